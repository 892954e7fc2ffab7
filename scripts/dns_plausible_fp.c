/* dns_plausible_fp.c - measures dns_plausible() on UDP payloads listed by
 * scripts/dns_plausible_fp.sh: one line per payload, "capture frame sport dport resp hex",
 * where resp is tshark's dns.flags.response (empty when tshark did not dissect the payload
 * as DNS). Prints the payloads tshark calls DNS that we refuse (misses) and those it does not
 * call DNS that we accept (false positives), then the counts. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/dns.h"

static int unhex(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int main(void)
{
    static char line[300000];
    static uint8_t buf[70000];
    long total = 0, dns = 0, fp = 0, miss = 0;
    while (fgets(line, sizeof(line), stdin)) {
        /* six fields split on single spaces; resp may be empty */
        char *f[6] = {line};
        int nf = 1;
        for (char *p = line; *p && nf < 6; p++)
            if (*p == ' ') {
                *p = '\0';
                f[nf++] = p + 1;
            }
        if (nf < 6)
            continue;
        size_t n = 0;
        for (char *h = f[5]; unhex(h[0]) >= 0 && unhex(h[1]) >= 0 && n < sizeof(buf); h += 2)
            buf[n++] = (uint8_t)(unhex(h[0]) << 4 | unhex(h[1]));
        bool is_dns = f[4][0] != '\0';
        bool q = false, acc = dns_plausible(buf, n, &q);
        total++;
        if (is_dns) {
            dns++;
            if (!acc) {
                miss++;
                printf("miss\t%s\t%s\t%s->%s\t%zu\n", f[0], f[1], f[2], f[3], n);
            }
        } else if (acc) {
            fp++;
            printf("fp\t%s\t%s\t%s->%s\t%zu\t%s\n", f[0], f[1], f[2], f[3], n,
                   q ? "query" : "response");
        }
    }
    printf("payloads %ld, tshark DNS %ld (refused %ld), not DNS %ld (accepted %ld)\n", total, dns,
           miss, total - dns, fp);
    return 0;
}
