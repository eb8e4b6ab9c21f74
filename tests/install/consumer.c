/* An out-of-tree program using an installed ptmon: builds a one-page guest on the fake
 * backend and translates one address. Exits 0 when the translation is right. */
#include <ptmon/fake.h>
#include <ptmon/ptmon.h>

#include <stdio.h>

int main(void)
{
    ptmon_fake_config fc = PTMON_FAKE_CONFIG_INIT;
    ptmon_fake *fake = NULL;
    ptmon *pm = NULL;
    ptmon_walk w;
    uint64_t cr3, frame;
    int rc;

    rc = ptmon_fake_create(&fc, &fake);
    if (rc == 0)
        rc = ptmon_fake_new_root(fake, &cr3);
    if (rc == 0)
        rc = ptmon_fake_alloc_frame(fake, &frame);
    if (rc == 0)
        rc = ptmon_fake_map(fake, cr3, 0x400000, frame, 4096, PTMON_PTE_RW | PTMON_PTE_US);
    if (rc == 0)
        rc = ptmon_create(ptmon_fake_glue(fake), NULL, &pm);
    if (rc == 0)
        rc = ptmon_translate(pm, cr3, 0x400123, &w);
    if (rc != 0) {
        fprintf(stderr, "consumer: %s\n", ptmon_strerror(rc));
        return 1;
    }
    printf("ptmon %s: VA 0x400123 -> GPA 0x%llx (%s)\n", ptmon_version_string(),
           (unsigned long long)w.gpa, ptmon_walk_status_name(w.status));
    ptmon_destroy(pm);
    ptmon_fake_destroy(fake);
    return w.status == PTMON_WALK_OK && w.gpa == frame + 0x123 ? 0 : 1;
}
