/* tw_check.c - main() for every Check suite: fork mode, summary line, exit status. */
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

int main(void)
{
    SRunner *sr = srunner_create(tw_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
