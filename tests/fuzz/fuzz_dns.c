/* fuzz_dns.c - libFuzzer target for dns_parse(), dns_plausible() and dns_answer_chain():
 * one DNS message per input (a UDP payload, or a TCP message without its length prefix).
 * Seeds: tests/fuzz/corpus/dns/, payloads cut from the shared captures and gen_pcaps.py's
 * forward-pointer messages. */
#include <stdbool.h>
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
    /* a chain names distinct records, ends at the record asked for */
    uint16_t chain[DNS_MAX_AN];
    for (uint16_t i = 0; i < m.n_an; i++) {
        int n = dns_answer_chain(&m, i, chain);
        if (n < 0 || n > m.n_an || (n > 0 && chain[n - 1] != i))
            abort();
    }
    /* a plausible message is one dns_parse() reads whole */
    bool q;
    if (dns_plausible(data, size, &q) && (rc != TW_OK || m.qr == q || m.n_q + m.q_trunc == 0))
        abort();
    return 0;
}
