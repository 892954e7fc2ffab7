/* fuzz_fleet.c - libFuzzer target for a fleet binding (fleet.h): the bytes a sensor reads
 * from Redis (another sensor's SET value or PUBLISH payload) go to fleet_binding_parse. A
 * parsed binding must have a NUL-terminated name that is not empty, an address, and must
 * survive a round trip through fleet_binding_format unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/fleet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same(const struct fleet_binding *a, const struct fleet_binding *b)
{
    if (!tw_addr_eq(&a->ip, &b->ip) || strcmp(a->name, b->name) || strcmp(a->rule, b->rule) ||
        strcmp(a->sensor, b->sensor) || strcmp(a->origin, b->origin) || a->ttl_s != b->ttl_s)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fleet_binding b, b2;
    if (fleet_binding_parse((const char *)data, size, &b) != TW_OK)
        return 0;
    if (!b.name[0] || strnlen(b.name, sizeof(b.name)) == sizeof(b.name) ||
        strnlen(b.sensor, sizeof(b.sensor)) == sizeof(b.sensor) ||
        (b.ip.family != 4 && b.ip.family != 6))
        abort();
    struct jw w;
    jw_init(&w, FLEET_BINDING_MAX * 2);
    fleet_binding_format(&w, &b);
    /* a name with bytes that are not UTF-8 comes back as U+FFFD: only valid text must match */
    if (!w.err && fleet_binding_parse(w.buf, w.len, &b2) == TW_OK) {
        bool utf8 = true;
        for (size_t i = 0; b.name[i] && utf8;) {
            size_t k = jw_utf8_len((const uint8_t *)b.name + i, strlen(b.name + i));
            utf8 = k > 0;
            i += k;
        }
        if (utf8)
            same(&b, &b2);
    }
    jw_free(&w);
    return 0;
}
