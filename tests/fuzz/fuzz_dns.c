/* fuzz_dns.c - libFuzzer target for dns_parse(): one DNS message per input (a UDP payload,
 * or a TCP message without its length prefix). Seeds: tests/fuzz/corpus/dns/, payloads cut
 * from the shared captures. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct dns_msg m; /* large; the harness, not the parser, keeps it */
    int rc = dns_parse(data, size, &m);
    /* every stored name is NUL-terminated within its buffer */
    for (unsigned i = 0; i < m.n_q; i++)
        if (strnlen(m.q[i].name, DNS_NAME_TEXT) == DNS_NAME_TEXT)
            abort();
    if (rc == TW_OK)
        for (unsigned i = 0; i < m.n_an; i++)
            if (strnlen(m.an[i].name, DNS_NAME_TEXT) == DNS_NAME_TEXT ||
                strnlen(m.an[i].target, DNS_NAME_TEXT) == DNS_NAME_TEXT)
                abort();
    if (m.n_q > DNS_MAX_Q || m.n_an > DNS_MAX_AN)
        abort();
    return 0;
}
