# ptmon_add_localized_static(TARGET OBJLIB): a static library whose only global definitions are
# the ptmon_ API.
#
# Hidden visibility keeps the internal functions (map_get, pt_walk, fake_decode, xen_map_get,
# ...) out of the shared libraries' dynamic symbol tables, but an archive is a bag of ordinary
# objects whose hidden symbols are still global: a program with a map_get of its own then fails
# to link against it ("multiple definition"), or, worse, the library silently calls the
# program's map_get instead of its own. So the objects of OBJLIB are linked into one relocatable
# object (ld -r resolves the calls between them), every hidden symbol of it is made local
# (objcopy --localize-hidden) and the archive holds that single object. What stays global is
# what PTMON_EXTERN marks (default visibility) and the undefined references (libc, the Xen
# libraries, the other archives' ptmon_ API). OBJLIB must therefore be compiled without
# PTMON_STATIC, which would empty PTMON_EXTERN and make the API hidden, hence local, too.
#
# The price: the archive is one member, so a program that uses any of it links all of it.
# Code that calls internal functions (the tests) links a plain archive of the same objects.
if(NOT CMAKE_LINKER OR NOT CMAKE_OBJCOPY)
  message(FATAL_ERROR "ptmon: the static archives need a linker (ld -r) and objcopy "
                      "(CMAKE_LINKER='${CMAKE_LINKER}', CMAKE_OBJCOPY='${CMAKE_OBJCOPY}')")
endif()

function(ptmon_add_localized_static target objlib)
  set(dir ${CMAKE_CURRENT_BINARY_DIR}/CMakeFiles/${target}.prelink)
  set(merged ${dir}/${target}-merged.o)
  set(obj ${dir}/${target}-localized.o)
  add_custom_command(OUTPUT ${obj} BYPRODUCTS ${merged}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
    COMMAND ${CMAKE_LINKER} -r -o ${merged} $<TARGET_OBJECTS:${objlib}>
    COMMAND ${CMAKE_OBJCOPY} --localize-hidden ${merged} ${obj}
    DEPENDS ${objlib} $<TARGET_OBJECTS:${objlib}>
    COMMENT "Prelinking ${target}: internal symbols made local"
    COMMAND_EXPAND_LISTS VERBATIM)
  set_source_files_properties(${obj} PROPERTIES EXTERNAL_OBJECT TRUE GENERATED TRUE)
  add_library(${target} STATIC ${obj})
  # Only an object as source: say which language links it.
  set_target_properties(${target} PROPERTIES LINKER_LANGUAGE C)
endfunction()
