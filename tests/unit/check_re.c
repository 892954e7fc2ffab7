/* check_re.c - the |re matcher: the SigmaHQ patterns, syntax, refusals, limits, and that a
 * pathological pattern stays linear. */
#include <string.h>
#include <time.h>

#include "tunnelwatch/re.h"
#include "tw_check.h"

static bool m(const char *pat, bool icase, const char *text)
{
    struct re *re = NULL;
    char err[128];
    int rc = re_compile(pat, strlen(pat), icase, &re, err, sizeof(err));
    ck_assert_msg(rc == TW_OK, "%s: %s", pat, err);
    bool r = re_search(re, (const uint8_t *)text, strlen(text));
    ck_assert_msg(r == re_search_nfa(re, (const uint8_t *)text, strlen(text)), "%s: engines differ",
                  pat);
    /* the sample always matches its own pattern */
    size_t sl;
    const char *smp = re_sample(re, &sl);
    ck_assert_msg(re_search(re, (const uint8_t *)smp, sl) || strchr(pat, '^') || strchr(pat, '$'),
                  "%s: sample '%s'", pat, smp);
    re_free(re);
    return r;
}

START_TEST(test_sigma_patterns)
{
    const char *ip = "\\?d=[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}";
    ck_assert(m(ip, false, "/a.zip?d=10.1.22.133&x"));
    ck_assert(!m(ip, false, "/a.zip?d=10.1.22"));
    ck_assert(!m(ip, false, "/a.zip?e=10.1.22.133"));
    const char *ext = "\\.(zip|asp|htm|url|xml|chm|mht|vbs|search-ms)\\?d=[0-9]{1,3}";
    ck_assert(m(ext, false, "http://h/x.search-ms?d=7"));
    ck_assert(!m(ext, false, "http://h/x.exe?d=7"));
    ck_assert(m(".{150}", false,
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    ck_assert(!m(".{150}", false, "short.example"));
    const char *w = "-[a-z0-9]{3}\\.[a-z0-9-]{3,}-s-account\\.workers\\.dev|\\.up\\.railway\\.app";
    ck_assert(m(w, false, "x-ab1.my-app-s-account.workers.dev/"));
    ck_assert(m(w, false, "https://demo.up.railway.app/"));
    ck_assert(!m(w, false, "https://demo.up.railway.apq/"));
    const char *ipfs = "(?i)(ipfs\\.io/|ipfs\\.io\\s).+\\..+@.+\\.[a-z]+";
    ck_assert(m(ipfs, false, "https://IPFS.io/ipfs/x.html#a@b.com"));
    ck_assert(!m(ipfs, false, "https://ipfs.io/ipfs/xhtml"));
    const char *q = "[a-f0-9]{4,8}\\.(?:[a-z0-9\\-]+\\.){2}[a-z0-9\\-]+";
    ck_assert(m(q, false, "a1b2c3.sub.domain.com"));
    ck_assert(!m(q, false, "zzzz.domain.com"));
}
END_TEST

START_TEST(test_syntax)
{
    ck_assert(m("^abc$", false, "abc"));
    ck_assert(!m("^abc$", false, "xabc"));
    ck_assert(!m("^abc$", false, "abcx"));
    ck_assert(m("a|^b", false, "cb") == false);
    ck_assert(m("ab*c", false, "ac"));
    ck_assert(m("ab+c", false, "abbbc"));
    ck_assert(!m("ab+c", false, "ac"));
    ck_assert(m("colou?r", false, "color"));
    ck_assert(m("[^a-c]x", false, "dx"));
    ck_assert(!m("[^a-c]x", false, "bx"));
    ck_assert(m("\\d\\d-\\w+\\s\\S", false, "42-ab_c x"));
    ck_assert(m("\\x41B", false, "zAB"));
    ck_assert(m("ABC", true, "xabcx"));
    ck_assert(!m("ABC", false, "xabcx"));
    ck_assert(m("a{2}b{1,}c{0,1}", false, "aab"));
    ck_assert(m("x{", false, "x{")); /* a brace that is no bound is a literal */
    ck_assert(m("(a*)*b", false, "aaab"));
    ck_assert(m("a.*?b", false, "axxb"));
    ck_assert(m("", false, "anything"));
    ck_assert(m("[]a]", false, "]"));
    ck_assert(m("[a\\-z]", false, "-"));
}
END_TEST

START_TEST(test_refused)
{
    static const char *const bad[] = {"(ab", "ab)", "[ab",     "*a",   "a{3,2}", "(?=x)", "(?<n>x)",
                                      "\\1", "\\b", "a{1001}", "\\x4", "[z-a]",  "a\\"};
    for (size_t i = 0; i < TW_ARRAY_LEN(bad); i++) {
        struct re *re = (struct re *)1;
        char err[128] = "";
        int rc = re_compile(bad[i], strlen(bad[i]), false, &re, err, sizeof(err));
        ck_assert_msg(rc == TW_EBAD || rc == TW_ELIMIT, "%s: %d", bad[i], rc);
        ck_assert_ptr_null(re);
        ck_assert(err[0]);
    }
    /* the program cap: 5 x 1000 instructions */
    struct re *re = NULL;
    char err[128];
    ck_assert_int_eq(re_compile("(a{1000}){5}", 12, false, &re, err, sizeof(err)), TW_ELIMIT);
}
END_TEST

/* (a|a)*(a|a)*...b against a long run of a's: exponential for a backtracker, linear here */
START_TEST(test_linear)
{
    const char *pat = "(a|a)*(a|a)*(a|a)*(a|a)*(a|aa)*b";
    struct re *re = NULL;
    char err[128];
    ck_assert_int_eq(re_compile(pat, strlen(pat), false, &re, err, sizeof(err)), TW_OK);
    static uint8_t text[100000];
    memset(text, 'a', sizeof(text));
    clock_t t0 = clock();
    ck_assert(!re_search(re, text, sizeof(text)));
    ck_assert_msg((double)(clock() - t0) / CLOCKS_PER_SEC < 5.0, "not linear");
    re_free(re);
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("re");
    TCase *tc = tcase_create("re");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_sigma_patterns);
    tcase_add_test(tc, test_syntax);
    tcase_add_test(tc, test_refused);
    tcase_add_test(tc, test_linear);
    suite_add_tcase(s, tc);
    return s;
}
