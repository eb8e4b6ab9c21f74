/*
 * errors.c — error names and messages, the library version and other name tables.
 *
 * Owns: static const tables only. Calls nothing.
 */
#include <ptmon/backend.h>

unsigned ptmon_version(void)
{
    return PTMON_VERSION_NUMBER;
}

#define PTMON_STR_(x)  #x
#define PTMON_XSTR_(x) PTMON_STR_(x)

const char *ptmon_version_string(void)
{
    return PTMON_XSTR_(PTMON_VERSION_MAJOR) "." PTMON_XSTR_(PTMON_VERSION_MINOR) "." PTMON_XSTR_(
        PTMON_VERSION_PATCH);
}

const char *ptmon_strerror(int err)
{
    switch (err) {
    case PTMON_OK:
        return "success";
#define PTMON_ERR_MSG_(name, value, msg) \
    case PTMON_##name:                   \
        return msg;
        PTMON_ERRNO_MAP(PTMON_ERR_MSG_)
#undef PTMON_ERR_MSG_
    default:
        return "unknown error";
    }
}

const char *ptmon_err_name(int err)
{
    switch (err) {
    case PTMON_OK:
        return "PTMON_OK";
#define PTMON_ERR_NAME_(name, value, msg) \
    case PTMON_##name:                    \
        return "PTMON_" #name;
        PTMON_ERRNO_MAP(PTMON_ERR_NAME_)
#undef PTMON_ERR_NAME_
    default:
        return "PTMON_E?";
    }
}

const char *ptmon_walk_status_name(enum ptmon_walk_status status)
{
    switch (status) {
    case PTMON_WALK_OK:
        return "ok";
    case PTMON_WALK_NOT_PRESENT:
        return "not present";
    case PTMON_WALK_RESERVED:
        return "reserved bit set";
    case PTMON_WALK_OUTSIDE_RAM:
        return "table outside RAM";
    case PTMON_WALK_NONCANONICAL:
        return "non-canonical address";
    }
    return "?";
}

const char *ptmon_action_name(enum ptmon_action action)
{
    switch (action) {
    case PTMON_ACTION_ALLOW:
        return "allow";
    case PTMON_ACTION_DENY:
        return "deny";
    case PTMON_ACTION_EMULATED:
        return "emulated";
    }
    return "?";
}
