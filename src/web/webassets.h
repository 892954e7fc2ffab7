/* webassets.h - the page's static files, embedded in the binary.
 *
 * web_assets.c is generated at configure time from src/web/assets/ (see the tunnelwatch-web
 * block of CMakeLists.txt), so the browser never fetches anything from outside and the build
 * needs no network. The table ends with a NULL path; data is NUL-terminated for convenience.
 */
#ifndef TW_WEBASSETS_H
#define TW_WEBASSETS_H

#include <stddef.h>

struct web_asset {
    const char *path; /* "/index.html" */
    const unsigned char *data;
    size_t len;
};

extern const struct web_asset web_assets[];

#endif /* TW_WEBASSETS_H */
