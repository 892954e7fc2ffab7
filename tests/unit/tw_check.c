/* tw_check.c - main() for every Check suite: fork mode, summary line, exit status (0 passed,
 * 1 failed, 77 skipped; see tw_check.h). */
#include <stdio.h>
#include <stdlib.h>

#include "tw_check.h"

uint8_t *tw_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 65536;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    *len = n;
    return buf;
}

const char *tw_src_path(const char *rel)
{
    static char buf[4096];
    const char *src = getenv("TW_SRC");
    snprintf(buf, sizeof(buf), "%s/%s", src ? src : ".", rel);
    return buf;
}

#define TW_EXIT_SKIP 77 /* ctest's SKIP_RETURN_CODE, automake's convention */

static char skip_reason[512]; /* set by tw_skip_partly(), in the parent */

void tw_skip_suite(const char *why)
{
    printf("SKIP: %s\n", why);
    fflush(stdout);
    exit(TW_EXIT_SKIP);
}

void tw_skip_partly(const char *why)
{
    if (!skip_reason[0])
        snprintf(skip_reason, sizeof(skip_reason), "%s", why);
}

int main(void)
{
    SRunner *sr = srunner_create(tw_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (failed)
        return EXIT_FAILURE;
    if (skip_reason[0]) {
        printf("SKIP: %s (the other tests passed)\n", skip_reason);
        return TW_EXIT_SKIP;
    }
    return EXIT_SUCCESS;
}
