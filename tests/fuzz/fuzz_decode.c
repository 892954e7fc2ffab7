/* fuzz_decode.c - libFuzzer target for dec_packet(): the first byte picks the link type
 * (modulo the table below), the rest is the frame. Every view the decoder returns is read back so
 * ASan checks it stays inside the input; a decoded payload is also fed to dec_transport(). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/decode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* New link types are appended, so the committed seeds keep their meaning. */
static const int dlts[] = {TW_DLT_EN10MB,   TW_DLT_LINUX_SLL, TW_DLT_SLL2,   TW_DLT_RAW,
                           TW_DLT_RAW101,   TW_DLT_IPV4,      TW_DLT_IPV6,   TW_DLT_NULL,
                           TW_DLT_LOOP,     TW_DLT_NFLOG,     TW_DLT_RAW14,  TW_DLT_PPP,
                           TW_DLT_PPP_HDLC, TW_DLT_PPP_ETHER, TW_DLT_C_HDLC, TW_DLT_IEEE802_11,
                           TW_DLT_RADIOTAP, TW_DLT_PPI,       TW_DLT_PRISM,  TW_DLT_AVS,
                           TW_DLT_IPNET};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    int dlt = dlts[data[0] % (sizeof(dlts) / sizeof(dlts[0]))];
    struct dec_pkt p;
    volatile uint8_t sink = 0;
    int r = dec_packet(dlt, data + 1, (uint32_t)(size - 1), &p);
    /* the one-pass path for plain Ethernet/IPv4/IPv6/TCP/UDP frames must equal the general walk */
    struct dec_pkt g;
    int rg = dec_packet_general(dlt, data + 1, (uint32_t)(size - 1), &g);
    if (rg != r || memcmp(&g, &p, sizeof(g)) != 0)
        abort();
    if (r == DEC_OK) {
        for (uint32_t i = 0; i < p.payload_len; i++)
            sink ^= p.payload[i];
        if (p.payload_len > 0)
            (void)dec_transport(p.payload[0] & 1 ? 6 : 17, p.payload, p.payload_len,
                                p.payload_wire_len, &p);
    } else if (r == DEC_FRAG) {
        for (uint32_t i = 0; i < p.frag_len; i++)
            sink ^= p.frag_data[i];
    }
    (void)sink;
    return 0;
}
