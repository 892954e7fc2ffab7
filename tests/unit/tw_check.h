/* tw_check.h - shared helpers for the Check unit suites. Each check_<mod>.c defines
 * tw_suite(); tw_check.c holds main(), which runs it in fork mode.
 *
 * Skips: a suite that cannot run without something absent from the machine (redis-server,
 * the shared captures) says so from tw_suite(), which runs in the parent process before
 * any test, never from inside a test (Check runs each test in a forked child, which cannot
 * change the suite's exit status). The suite then exits 77, which ctest reports as skipped
 * (SKIP_RETURN_CODE 77 in tests/CMakeLists.txt), instead of passing. */
#ifndef TW_CHECK_H
#define TW_CHECK_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

Suite *tw_suite(void);

/* From tw_suite(): prints "SKIP: why" and exits 77 now; no test runs. */
void tw_skip_suite(const char *why) __attribute__((noreturn));
/* From tw_suite(), for a suite that leaves out the tests needing what is absent: the tests
 * it does add still run, and a failure still fails the suite; when they all pass the suite
 * prints "SKIP: why" and exits 77 instead of 0, since part of it did not run. */
void tw_skip_partly(const char *why);

/* Reads a whole file (test fixtures); NULL when missing. Caller frees. */
uint8_t *tw_read_file(const char *path, size_t *len);
/* Path under the source tree ($TW_SRC, else "."), static buffer. */
const char *tw_src_path(const char *rel);

#endif
