/* bench_matcher.c - throughput of the Aho-Corasick matcher against a naive loop, for the seed's
 * 7 patterns, 10 thousand and 1 million generated domain-like patterns, with build time and
 * memory; and a million-domain indicator list through the ruleset (hash set of suffixes).
 *
 * Usage: bench_matcher [names]   (default 200000 names per measurement)
 * Patterns and names come from a fixed-seed generator, so runs are comparable. One name in
 * eight embeds a pattern, the rest are random look-alikes. Hyperscan is not linked: the
 * project does not depend on it, and it is reported as skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tunnelwatch/ac.h"
#include "tunnelwatch/rules.h"

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* resident set now, from /proc (the peak would hide later, smaller structures) */
static double rss_mib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return (double)res * 4096.0 / 1048576.0;
}

static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t label(char *out, size_t min, size_t max)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = min + rnd() % (max - min + 1);
    for (size_t i = 0; i < n; i++)
        out[i] = al[rnd() % 36];
    return n;
}

/* e.g. "k3j9a.qwxyzt.net": a domain-like string of 2-3 labels */
static size_t domain(char *out)
{
    static const char *tld[] = {"com", "net", "org", "io", "app", "dev"};
    size_t n = label(out, 3, 10);
    out[n++] = '.';
    if (rnd() % 2) {
        n += label(out + n, 4, 8);
        out[n++] = '.';
    }
    const char *t = tld[rnd() % 6];
    memcpy(out + n, t, strlen(t));
    n += strlen(t);
    out[n] = '\0';
    return n;
}

static char **make_patterns(size_t n)
{
    static const char *seed[] = {
        "tunnel.us.ngrok.com", "tunnel.eu.ngrok.com", "tunnel.ap.ngrok.com", "tunnel.au.ngrok.com",
        "tunnel.sa.ngrok.com", "tunnel.jp.ngrok.com", "tunnel.in.ngrok.com"};
    char **p = malloc(n * sizeof(*p));
    for (size_t i = 0; i < n; i++) {
        char buf[64];
        if (n == 7)
            snprintf(buf, sizeof(buf), "%s", seed[i]);
        else
            domain(buf);
        p[i] = strdup(buf);
    }
    return p;
}

static char **make_names(size_t n, char **pats, size_t np)
{
    char **names = malloc(n * sizeof(*names));
    for (size_t i = 0; i < n; i++) {
        char buf[160];
        size_t k = label(buf, 2, 12);
        buf[k++] = '.';
        if (rnd() % 8 == 0) {
            snprintf(buf + k, sizeof(buf) - k, "%s", pats[rnd() % np]);
        } else {
            domain(buf + k);
        }
        names[i] = strdup(buf);
    }
    return names;
}

static int count_hit(void *ud, uint32_t id, size_t end)
{
    (void)id;
    (void)end;
    (*(size_t *)ud)++;
    return 0;
}

static void bench_size(size_t np, size_t nnames)
{
    char **pats = make_patterns(np);
    char **names = make_names(nnames, pats, np);
    double rss0 = rss_mib();
    double t0 = now(), c0 = cpu();
    struct ac *ac = ac_new();
    for (size_t i = 0; i < np; i++)
        if (ac_add(ac, (const uint8_t *)pats[i], strlen(pats[i]), (uint32_t)i) != TW_OK)
            abort();
    if (ac_build(ac) != TW_OK)
        abort();
    double tb = now() - t0, cb = cpu() - c0;
    double rss1 = rss_mib();
    size_t hits = 0;
    t0 = now();
    for (size_t i = 0; i < nnames; i++)
        ac_search(ac, (const uint8_t *)names[i], strlen(names[i]), count_hit, &hits);
    double ta = now() - t0;
    /* naive: strstr over every pattern; with a million patterns only a sample of names */
    size_t nn = np >= 1000000 ? 200 : np >= 10000 ? 2000 : nnames;
    volatile size_t nhits = 0;
    t0 = now();
    for (size_t i = 0; i < nn; i++)
        for (size_t p = 0; p < np; p++)
            if (strstr(names[i], pats[p]))
                nhits++;
    double tn = now() - t0;
    printf("%8zu patterns: build %.3f s wall / %.3f s CPU, automaton %.1f MiB (RSS +%.1f MiB)\n"
           "          AC    %10.0f names/s (%zu names, %zu hits)\n"
           "          naive %10.0f names/s (%zu names%s, %zu hits)\n",
           np, tb, cb, (double)ac_memory(ac) / 1048576.0, rss1 - rss0, (double)nnames / ta, nnames,
           hits, (double)nn / tn, nn, nn < nnames ? ", a sample" : "", (size_t)nhits);
    ac_free(ac);
    for (size_t i = 0; i < np; i++)
        free(pats[i]);
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(pats);
    free(names);
}

static void bench_list(size_t nd, size_t nnames)
{
    char **pats = make_patterns(nd);
    size_t cap = nd * 32 + 64, len = 0;
    char *txt = malloc(cap);
    len += (size_t)snprintf(txt, cap, "# id: bench\n# title: Bench list\n");
    for (size_t i = 0; i < nd; i++)
        len += (size_t)snprintf(txt + len, cap - len, "%s\n", pats[i]);
    char **names = make_names(nnames, pats, nd);
    double rss0 = rss_mib(), t0 = now(), c0 = cpu();
    struct ruleset *rs = ruleset_new(RULE_POLICY_ERROR);
    if (ruleset_load_mem(rs, "bench.txt", (const uint8_t *)txt, len, stderr) != 1 ||
        ruleset_build(rs) != TW_OK)
        abort();
    double tb = now() - t0, cb = cpu() - c0, rss1 = rss_mib();
    size_t hits = 0;
    struct rule_hit h[4];
    t0 = now();
    for (size_t i = 0; i < nnames; i++)
        hits += (size_t)ruleset_match(rs, RF_DEST_HOST, (const uint8_t *)names[i], strlen(names[i]),
                                      h, 4);
    double tm = now() - t0;
    printf("%8zu-domain indicator list (ruleset): load+build %.3f s wall / %.3f s CPU "
           "(RSS +%.1f MiB)\n          match %10.0f names/s (%zu names, %zu hits)\n",
           nd, tb, cb, rss1 - rss0, (double)nnames / tm, nnames, hits);
    ruleset_free(rs);
    free(txt);
    for (size_t i = 0; i < nd; i++)
        free(pats[i]);
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(pats);
    free(names);
}

int main(int argc, char **argv)
{
    size_t nnames = 200000;
    if (argc > 1) {
        char *end;
        unsigned long v = strtoul(argv[1], &end, 10);
        if (*end || v == 0) {
            fprintf(stderr, "usage: %s [names]\n", argv[0]);
            return 2;
        }
        nnames = v;
    }
    bench_size(7, nnames);
    bench_size(10000, nnames);
    bench_size(1000000, nnames);
    bench_list(1000000, nnames);
    printf("hyperscan: skipped (libhyperscan-dev not installed; the project does not link it)\n");
    return 0;
}
