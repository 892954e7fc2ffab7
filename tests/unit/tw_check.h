/* tw_check.h - shared helpers for the Check unit suites. Each check_<mod>.c defines
 * tw_suite(); tw_check.c holds main(), which runs it in fork mode. */
#ifndef TW_CHECK_H
#define TW_CHECK_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

Suite *tw_suite(void);

/* Reads a whole file (test fixtures); NULL when missing. Caller frees. */
uint8_t *tw_read_file(const char *path, size_t *len);
/* Path under the source tree ($TW_SRC, else "."), static buffer. */
const char *tw_src_path(const char *rel);

#endif
