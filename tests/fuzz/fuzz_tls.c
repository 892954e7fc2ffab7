/* fuzz_tls.c - libFuzzer target for the ClientHello path: the input is the client side of a
 * TCP stream from its first TLS record on; it goes through tls_hello_from_records() and then
 * tls_parse_hello() (as TLS and as QUIC), whose result tls_parse_hello_opt() without JA4
 * must repeat field for field. Seeds: tests/fuzz/corpus/tls/, client streams
 * cut from the shared captures. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[TLS_HELLO_MAX];
    (void)tls_looks_like_hello(data, size);
    long n = tls_hello_from_records(data, size, buf, sizeof(buf));
    /* also parse the raw input as a handshake message, as QUIC CRYPTO data arrives */
    const uint8_t *msg = n > 0 ? buf : data;
    size_t len = n > 0 ? (size_t)n : size;
    if (n > (long)sizeof(buf))
        abort();
    for (int quic = 0; quic < 2; quic++) {
        struct tls_hello h, q;
        int rc = tls_parse_hello(msg, len, quic, &h);
        /* without JA4 (the packet path's parse) every other field and the verdict are the
         * same: TW_ELIMIT included, though the lists are only counted then */
        int rq = tls_parse_hello_opt(msg, len, quic, false, &q);
        if (rq != rc || q.sni != h.sni || q.sni_len != h.sni_len || strcmp(q.alpn, h.alpn) ||
            q.legacy_version != h.legacy_version || q.max_version != h.max_version ||
            q.has_ech != h.has_ech || q.ja4[0])
            abort();
        if (rc == TW_OK) {
            if (h.sni && (h.sni < msg || h.sni + h.sni_len > msg + len))
                abort(); /* the view must stay inside the message */
            if (strnlen(h.ja4, sizeof(h.ja4)) != 36 ||
                strnlen(h.alpn, sizeof(h.alpn)) == sizeof(h.alpn))
                abort();
        }
    }
    return 0;
}
