/* check_yml.c - the fast Sigma YAML path (yml.c) against libyaml: every rule file we have
 * (conf/rules, the test rules, the fuzz seeds, and ../shared/sigma when present) either
 * declines or gives libyaml's document node for node; and the constructs it must decline. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tunnelwatch/yml.h"
#include "tw_check.h"

/* libyaml's document of a one-document file; false when it fails or holds more. */
static bool libyaml_doc(const uint8_t *d, size_t n, yaml_document_t *doc)
{
    yaml_parser_t p;
    yaml_document_t next;
    ck_assert(yaml_parser_initialize(&p));
    yaml_parser_set_input_string(&p, d, n);
    bool ok = yaml_parser_load(&p, doc);
    if (ok && yaml_parser_load(&p, &next)) {
        bool more = yaml_document_get_root_node(&next) != NULL;
        yaml_document_delete(&next);
        if (more) {
            yaml_document_delete(doc);
            ok = false;
        }
    } else if (ok) {
        yaml_document_delete(doc);
        ok = false;
    }
    yaml_parser_delete(&p);
    return ok;
}

/* 1: fast path taken and equal, 0: declined; fails the test on a difference. */
static int compare(const char *name, const uint8_t *d, size_t n)
{
    struct yml_doc a;
    yaml_document_t b;
    int rc = yml_load(&a, d, n);
    ck_assert_int_ne(rc, YML_ENOMEM);
    if (rc != YML_OK)
        return 0;
    bool lib = libyaml_doc(d, n, &b);
    if (!lib)
        ck_abort_msg("%s: fast path loaded what libyaml refuses", name);
    bool same = yml_same(&a.doc, &b);
    yml_free(&a);
    yaml_document_delete(&b);
    ck_assert_msg(same, "%s: fast path differs from libyaml", name);
    return 1;
}

static void walk(const char *dir, int *files, int *fast)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return;
    struct dirent *de;
    while ((de = readdir(dh))) {
        if (de->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            walk(path, files, fast);
            continue;
        }
        size_t n = strlen(path);
        if (!(n > 4 && (!strcmp(path + n - 4, ".yml") || !strcmp(path + n - 5, ".yaml"))) &&
            !strstr(dir, "corpus"))
            continue;
        size_t len;
        uint8_t *d = tw_read_file(path, &len);
        if (!d)
            continue;
        (*files)++;
        *fast += compare(path, d, len);
        free(d);
    }
    closedir(dh);
}

START_TEST(same_as_libyaml_on_our_rules)
{
    int files = 0, fast = 0;
    walk(tw_src_path("conf/rules"), &files, &fast);
    walk(tw_src_path("tests/e2e/data"), &files, &fast);
    walk(tw_src_path("tests/fuzz/corpus/sigma"), &files, &fast);
    fprintf(stderr, "yml: %d of %d of our rule files took the fast path\n", fast, files);
    ck_assert_int_gt(files, 5);
    ck_assert_int_gt(fast, 3);
}
END_TEST

START_TEST(same_as_libyaml_on_sigmahq)
{
    const char *sh = getenv("TW_SHARED");
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/sigma", sh ? sh : "../shared");
    int files = 0, fast = 0;
    walk(dir, &files, &fast);
    if (files == 0)
        return; /* no shared rules on this machine */
    fprintf(stderr, "yml: %d of %d SigmaHQ files took the fast path\n", fast, files);
    /* the point of the fast path: nearly every SigmaHQ rule takes it */
    ck_assert_msg(fast * 10 >= files * 9, "only %d of %d files took the fast path", fast, files);
}
END_TEST

static const char *const accepted[] = {
    "title: a\nid: b\n",
    "title: 'it''s'\nx: \"q\"  # c\n",
    "a:\n  b: c\n  d:\n  - e\n  - f: g\n    h: i\n",
    "a:\n- x\n- y\nb: z\n",
    "d: |\n  line one\n\n  line: two # kept\nn: 1\n",
    "d: |-\n    x\n      y\n",
    "t: word one\n  two\n\n  three\nu: v\n",
    "e:\nf: ~\n",
    "# only\nk: v # c\n\n",
    "s:\n  - 'a'\n  - b: 'c'\n",
};

static const char *const declined[] = {
    "[a, b]\n",
    "a: [b, c]\n",
    "a: {b: c}\n",
    "a: &x b\nc: *x\n",
    "a: !tag b\n",
    "a: >\n  b\n",
    "a: |+\n  b\n",
    "a: |2\n  b\n",
    "---\na: b\n",
    "a: b\n---\nc: d\n",
    "%YAML 1.1\na: b\n",
    "'a': b\n",
    "a: \"b\\n\"\n",
    "a: 'b\n  c'\n",
    "a:\tb\n",
    "a: b\r\n",
    "a: \xc3\xa9\n",
    "  a: b\n",
    "a: b: c\n",
    "a: b\n c: d\n",
    "a:\n  - - b\n",
    "a:\n  -\n    b\n",
    "- a\n",
    "a: |\n   \n  b\n",
    "a: b\n  - c\n",
    "",
};

START_TEST(subset)
{
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        const char *s = accepted[i];
        ck_assert_msg(compare(s, (const uint8_t *)s, strlen(s)) == 1, "declined: %s", s);
    }
    for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++) {
        const char *s = declined[i];
        struct yml_doc d;
        ck_assert_msg(yml_load(&d, (const uint8_t *)s, strlen(s)) == YML_DECLINE, "taken: %s", s);
    }
}
END_TEST

Suite *tw_suite(void)
{
    Suite *s = suite_create("yml");
    TCase *tc = tcase_create("yml_load");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, subset);
    tcase_add_test(tc, same_as_libyaml_on_our_rules);
    tcase_add_test(tc, same_as_libyaml_on_sigmahq);
    suite_add_tcase(s, tc);
    return s;
}
