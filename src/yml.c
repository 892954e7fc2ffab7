/* yml.c - the fast path for Sigma YAML (see yml.h).
 *
 * Line based: a line is its indentation (spaces), its content and its end. A block mapping is
 * a run of "key: ..." lines at one indentation, a block sequence a run of "- ..." lines (the
 * indentless form under a key included), and a "- key: value" item opens a compact mapping at
 * the key's column. Scalars: plain (one line, or folded over more-indented lines), single- or
 * double-quoted on one line (no backslash escapes), and literal block scalars ('|', '|-').
 * Every other construct - flow collections, anchors, aliases, tags, folded scalars, quoted
 * keys, tabs, CR, non-ASCII bytes, several documents, directives, a plain scalar that
 * libyaml would refuse (": " inside) - declines, and so does any indentation the grammar
 * above does not expect: the caller then runs libyaml, whose result (or error) stands.
 * Nodes are added in libyaml's order (a collection before its children), so ids match, and
 * each node's start line is set where libyaml's parser puts its start mark.
 */
#include <stdlib.h>
#include <string.h>

#include "tunnelwatch/yml.h"

#define YML_MAX_DEPTH 64   /* nested collections; deeper files go to libyaml */
#define YML_MAX_KEY   1000 /* libyaml refuses simple keys past 1024 characters */

/* Arena: node values and child lists, freed at once (yml_free). */
struct yml_chunk {
    struct yml_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

struct ln {
    size_t start, ind, c, e, next; /* content [c, e), indentation ind, next line's start */
};

struct yp {
    yaml_document_t *doc;
    struct yml_doc *out;
    int *kids; /* child ids of the collections being read, a stack */
    size_t n_kids, cap_kids;
    const char *s;
    size_t n;
    size_t pos;  /* start of the current line */
    size_t line; /* its number, from 0 (libyaml's mark.line) */
    char *buf;   /* scratch for one scalar's value (n + 1 bytes) */
    int rc;      /* the first failure sticks: YML_DECLINE or YML_ENOMEM */
    int depth;
    struct ln memo; /* the line line_at found last: the parser asks for each line several times */
    bool memo_ok;
};

static struct ln line_at(struct yp *p, size_t pos)
{
    if (p->memo_ok && p->memo.start == pos)
        return p->memo;
    struct ln l;
    size_t i = pos;
    while (i < p->n && p->s[i] == ' ')
        i++;
    l.start = pos;
    l.ind = i - pos;
    l.c = i;
    const char *nl = memchr(p->s + i, '\n', p->n - i);
    l.e = nl ? (size_t)(nl - p->s) : p->n;
    l.next = nl ? l.e + 1 : p->n;
    p->memo = l;
    p->memo_ok = true;
    return l;
}

static void advance(struct yp *p, const struct ln *l)
{
    p->pos = l->next;
    p->line++;
}

/* Blank and comment-only lines. */
static void skip_blank(struct yp *p)
{
    while (p->pos < p->n) {
        struct ln l = line_at(p, p->pos);
        if (l.c != l.e && p->s[l.c] != '#')
            return;
        advance(p, &l);
    }
}

static int decline(struct yp *p)
{
    if (!p->rc)
        p->rc = YML_DECLINE;
    return 0;
}

static bool is_dash(const struct yp *p, size_t c, size_t e)
{
    return c < e && p->s[c] == '-' && (c + 1 == e || p->s[c + 1] == ' ');
}

static void *arena(struct yp *p, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    struct yml_chunk *c = p->out->arena;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        c = malloc(sizeof(*c) + cap);
        if (!c) {
            p->rc = YML_ENOMEM;
            return NULL;
        }
        c->next = p->out->arena;
        c->used = 0;
        c->cap = cap;
        p->out->arena = c;
    }
    void *r = (char *)c->data + c->used;
    c->used += n;
    return r;
}

/* A new node (type and start line set, the rest zero): its id, or 0. */
static int new_node(struct yp *p, yaml_node_type_t type, const char *tag, size_t line)
{
    yaml_document_t *d = p->doc;
    if (p->rc)
        return 0;
    if (d->nodes.top == d->nodes.end) {
        size_t n = (size_t)(d->nodes.top - d->nodes.start), cap = n ? 2 * n : 64;
        yaml_node_t *nn = realloc(d->nodes.start, cap * sizeof(*nn));
        if (!nn) {
            p->rc = YML_ENOMEM;
            return 0;
        }
        d->nodes.start = nn;
        d->nodes.top = nn + n;
        d->nodes.end = nn + cap;
    }
    yaml_node_t *node = d->nodes.top++;
    memset(node, 0, sizeof(*node));
    node->type = type;
    node->tag = (yaml_char_t *)(uintptr_t)tag;
    node->start_mark.line = line;
    return (int)(d->nodes.top - d->nodes.start);
}

static int scalar(struct yp *p, const char *v, size_t n, yaml_scalar_style_t st, size_t line)
{
    char *val = arena(p, n + 1);
    int id = val ? new_node(p, YAML_SCALAR_NODE, YAML_DEFAULT_SCALAR_TAG, line) : 0;
    if (!id)
        return 0;
    memcpy(val, v, n);
    val[n] = '\0';
    yaml_node_t *node = &p->doc->nodes.start[id - 1];
    node->data.scalar.value = (yaml_char_t *)val;
    node->data.scalar.length = n;
    node->data.scalar.style = st;
    return id;
}

static int collection(struct yp *p, bool map, size_t line)
{
    int id = new_node(p, map ? YAML_MAPPING_NODE : YAML_SEQUENCE_NODE,
                      map ? YAML_DEFAULT_MAPPING_TAG : YAML_DEFAULT_SEQUENCE_TAG, line);
    if (id) {
        yaml_node_t *node = &p->doc->nodes.start[id - 1];
        if (map)
            node->data.mapping.style = YAML_BLOCK_MAPPING_STYLE;
        else
            node->data.sequence.style = YAML_BLOCK_SEQUENCE_STYLE;
    }
    return id;
}

static void push_kid(struct yp *p, int id)
{
    if (p->n_kids == p->cap_kids) {
        size_t cap = p->cap_kids ? 2 * p->cap_kids : 256;
        int *k = realloc(p->kids, cap * sizeof(int));
        if (!k) {
            p->rc = YML_ENOMEM;
            return;
        }
        p->kids = k;
        p->cap_kids = cap;
    }
    p->kids[p->n_kids++] = id;
}

/* The children pushed since mark become collection id's items (or key/value pairs). */
static void set_kids(struct yp *p, int id, size_t mark)
{
    size_t n = p->n_kids - mark;
    yaml_node_t *node = &p->doc->nodes.start[id - 1];
    if (node->type == YAML_MAPPING_NODE) {
        yaml_node_pair_t *pr = arena(p, (n / 2 + 1) * sizeof(*pr));
        for (size_t i = 0; pr && i + 1 < n; i += 2)
            pr[i / 2] = (yaml_node_pair_t){p->kids[mark + i], p->kids[mark + i + 1]};
        node->data.mapping.pairs.start = pr;
        node->data.mapping.pairs.top = node->data.mapping.pairs.end = pr ? pr + n / 2 : NULL;
    } else {
        yaml_node_item_t *it = arena(p, (n + 1) * sizeof(*it));
        for (size_t i = 0; it && i < n; i++)
            it[i] = p->kids[mark + i];
        node->data.sequence.items.start = it;
        node->data.sequence.items.top = node->data.sequence.items.end = it ? it + n : NULL;
    }
    p->n_kids = mark;
}

/* The ':' ending a plain key that starts at c ("key: value" or "key:"), or 0. */
static size_t key_end(const struct yp *p, size_t c, size_t e)
{
    if (c >= e || strchr("-?:,[]{}#&*!|>'\"%@`", p->s[c]))
        return 0;
    for (size_t i = c + 1; i < e && i - c <= YML_MAX_KEY; i++) {
        if (p->s[i] == ':' && (i + 1 == e || p->s[i + 1] == ' '))
            return i;
        if (p->s[i] == '#' && p->s[i - 1] == ' ')
            return 0;
    }
    return 0;
}

/* After a quoted scalar or a block scalar header: nothing, or a comment. */
static bool rest_is_blank(const struct yp *p, size_t i, size_t e)
{
    size_t j = i;
    while (j < e && p->s[j] == ' ')
        j++;
    return j == e || (p->s[j] == '#' && j > i);
}

static int quoted(struct yp *p, const struct ln *l, size_t v)
{
    char q = p->s[v];
    size_t i = v + 1, n = 0;
    for (;;) {
        if (i >= l->e || (q == '"' && p->s[i] == '\\'))
            return decline(p); /* spans lines, or has escapes: libyaml's business */
        if (p->s[i] == q) {
            if (q == '\'' && i + 1 < l->e && p->s[i + 1] == '\'') {
                p->buf[n++] = '\'';
                i += 2;
                continue;
            }
            break;
        }
        p->buf[n++] = p->s[i++];
    }
    if (!rest_is_blank(p, i + 1, l->e))
        return decline(p); /* a quoted key, or text after the quote */
    int id = scalar(p, p->buf, n,
                    q == '"' ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : YAML_SINGLE_QUOTED_SCALAR_STYLE,
                    p->line);
    advance(p, l);
    return id;
}

/* The end of plain text in [c, e) (a comment cut off, trailing spaces trimmed), or 0 when it
 * holds ": " (a mapping value libyaml would refuse here). */
static size_t plain_end(const struct yp *p, size_t c, size_t e)
{
    size_t i = c;
    for (; i < e; i++) {
        if (p->s[i] == ':' && (i + 1 == e || p->s[i + 1] == ' '))
            return 0;
        if (p->s[i] == '#' && i > c && p->s[i - 1] == ' ')
            break;
    }
    while (i > c && p->s[i - 1] == ' ')
        i--;
    return i;
}

/* A plain scalar from v, folded over the following lines indented deeper than pi. */
static int plain(struct yp *p, const struct ln *l, size_t v, size_t pi)
{
    size_t end = plain_end(p, v, l->e), line = p->line;
    if (!end)
        return decline(p);
    size_t n = end - v, breaks = 0;
    memcpy(p->buf, p->s + v, n);
    advance(p, l);
    while (p->pos < p->n) {
        struct ln c = line_at(p, p->pos);
        if (c.c == c.e) { /* an empty line: a line feed in the value if text follows */
            breaks++;
            advance(p, &c);
            continue;
        }
        if (c.ind <= pi || p->s[c.c] == '#')
            break;
        size_t ce = plain_end(p, c.c, c.e);
        if (!ce || strchr("-?:,[]{}#&*!|>'\"%@`", p->s[c.c]) || ce != c.e)
            return decline(p); /* keep to continuation lines of plain words */
        if (breaks == 0)
            p->buf[n++] = ' ';
        for (; breaks; breaks--)
            p->buf[n++] = '\n';
        memcpy(p->buf + n, p->s + c.c, ce - c.c);
        n += ce - c.c;
        advance(p, &c);
    }
    return scalar(p, p->buf, n, YAML_PLAIN_SCALAR_STYLE, line);
}

/* The first content line's indentation of a literal block scalar, or 0 (declined). */
static size_t literal_indent(struct yp *p, size_t pi)
{
    for (size_t pos = p->pos; pos < p->n;) {
        struct ln l = line_at(p, pos);
        if (l.c != l.e)
            return l.ind > pi ? l.ind : (size_t)decline(p);
        if (l.ind)
            return (size_t)decline(p); /* spaces before the first content line */
        pos = l.next;
    }
    return (size_t)decline(p);
}

/* '|' or '|-' at v: the lines indented at least as deep as the first one, verbatim. */
static int literal(struct yp *p, const struct ln *l, size_t v, size_t pi)
{
    size_t i = v + 1, line = p->line;
    bool strip = i < l->e && p->s[i] == '-';
    if (!rest_is_blank(p, i + strip, l->e))
        return decline(p); /* '|+', an indentation indicator, or text */
    advance(p, l);
    size_t ci = literal_indent(p, pi), n = 0, pending = 0;
    if (!ci)
        return 0;
    bool any = false, last_nl = false;
    while (p->pos < p->n) {
        struct ln c = line_at(p, p->pos);
        if (c.c != c.e && c.ind < ci)
            break;
        if (c.c == c.e && c.e - c.start <= ci) {
            pending++;
            advance(p, &c);
            continue;
        }
        if (any)
            p->buf[n++] = '\n';
        for (; pending; pending--)
            p->buf[n++] = '\n';
        memcpy(p->buf + n, p->s + c.start + ci, c.e - c.start - ci);
        n += c.e - c.start - ci;
        any = true;
        last_nl = c.next > c.e;
        advance(p, &c);
    }
    if (!strip && last_nl)
        p->buf[n++] = '\n';
    return scalar(p, p->buf, n, YAML_LITERAL_SCALAR_STYLE, line);
}

/* A value that starts on its key's (or dash's) line at v; pi: the enclosing collection's
 * indentation. */
static int inline_value(struct yp *p, const struct ln *l, size_t v, size_t pi)
{
    char c = p->s[v];
    if (c == '|')
        return literal(p, l, v, pi);
    if (c == '\'' || c == '"')
        return quoted(p, l, v);
    if (strchr(",[]{}&*!>%@`", c) ||
        ((c == '-' || c == '?' || c == ':') && (v + 1 == l->e || p->s[v + 1] == ' ')))
        return decline(p);
    return plain(p, l, v, pi);
}

static int bmap(struct yp *p, size_t ind, size_t kc);
static int bseq(struct yp *p, size_t ind, bool indentless);

/* The value of "key:" with nothing after it: a collection on the next lines, or empty. */
static int block_value(struct yp *p, const struct ln *l, size_t ind)
{
    size_t line = p->line;
    advance(p, l);
    skip_blank(p);
    if (p->pos < p->n) {
        struct ln c = line_at(p, p->pos);
        bool dash = is_dash(p, c.c, c.e);
        if (c.ind == ind && dash)
            return bseq(p, ind, true);
        if (c.ind > ind)
            return dash                   ? bseq(p, c.ind, false)
                   : key_end(p, c.c, c.e) ? bmap(p, c.ind, c.c)
                                          : decline(p);
    }
    return scalar(p, "", 0, YAML_PLAIN_SCALAR_STYLE, line);
}

/* A block mapping at indentation ind whose first key starts at kc on the current line. */
static int bmap(struct yp *p, size_t ind, size_t kc)
{
    if (++p->depth > YML_MAX_DEPTH)
        return decline(p);
    int map = collection(p, true, p->line);
    size_t mark = p->n_kids;
    while (!p->rc) {
        struct ln l = line_at(p, p->pos);
        size_t ke = key_end(p, kc, l.e), kt = ke;
        if (!ke)
            return decline(p);
        while (p->s[kt - 1] == ' ')
            kt--;
        int key = scalar(p, p->s + kc, kt - kc, YAML_PLAIN_SCALAR_STYLE, p->line);
        size_t v = ke + 1;
        while (v < l.e && p->s[v] == ' ')
            v++;
        int val =
            (v == l.e || p->s[v] == '#') ? block_value(p, &l, ind) : inline_value(p, &l, v, ind);
        if (p->rc)
            break;
        push_kid(p, key);
        push_kid(p, val);
        skip_blank(p);
        if (p->pos >= p->n)
            break;
        l = line_at(p, p->pos);
        if (l.ind < ind)
            break;
        if (l.ind > ind || is_dash(p, l.c, l.e))
            return decline(p);
        kc = l.c;
    }
    if (!p->rc)
        set_kids(p, map, mark);
    p->depth--;
    return map;
}

/* A block sequence whose dashes stand at indentation ind (indentless: under a key, at the
 * key's own indentation). */
static int bseq(struct yp *p, size_t ind, bool indentless)
{
    if (++p->depth > YML_MAX_DEPTH)
        return decline(p);
    int seq = collection(p, false, p->line);
    size_t mark = p->n_kids;
    while (!p->rc) {
        struct ln l = line_at(p, p->pos);
        size_t v = l.c + 1;
        while (v < l.e && p->s[v] == ' ')
            v++;
        if (v == l.e || p->s[v] == '#' || is_dash(p, v, l.e))
            return decline(p); /* an item on the next lines, or a nested compact sequence */
        int item = key_end(p, v, l.e) ? bmap(p, v - l.start, v) : inline_value(p, &l, v, ind);
        if (p->rc)
            break;
        push_kid(p, item);
        skip_blank(p);
        if (p->pos >= p->n)
            break;
        l = line_at(p, p->pos);
        if (l.ind < ind || (l.ind == ind && !is_dash(p, l.c, l.e) && indentless))
            break;
        if (l.ind > ind || !is_dash(p, l.c, l.e))
            return decline(p);
    }
    if (!p->rc)
        set_kids(p, seq, mark);
    p->depth--;
    return seq;
}

/* Printable ASCII and line feeds only; no document markers or directives. */
static bool plain_text(const uint8_t *d, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((d[i] < 0x20 || d[i] > 0x7e) && d[i] != '\n')
            return false;
        if ((i == 0 || d[i - 1] == '\n') &&
            (d[i] == '%' ||
             (len - i >= 3 && (!memcmp(d + i, "---", 3) || !memcmp(d + i, "...", 3)))))
            return false;
    }
    return true;
}

void yml_free(struct yml_doc *d)
{
    if (!d)
        return;
    free(d->doc.nodes.start);
    while (d->arena) {
        struct yml_chunk *n = d->arena->next;
        free(d->arena);
        d->arena = n;
    }
    memset(d, 0, sizeof(*d));
}

int yml_load(struct yml_doc *out, const uint8_t *data, size_t len)
{
    memset(out, 0, sizeof(*out));
    if (!data || len == 0 || len > (size_t)INT32_MAX || !plain_text(data, len))
        return YML_DECLINE;
    struct yp p = {.doc = &out->doc, .out = out, .s = (const char *)data, .n = len, .rc = YML_OK};
    skip_blank(&p);
    struct ln l = line_at(&p, p.pos);
    if (p.pos >= len || l.ind != 0 || !key_end(&p, l.c, l.e))
        return YML_DECLINE; /* empty, indented or not a mapping */
    p.buf = malloc(len + 1);
    if (!p.buf)
        return YML_ENOMEM;
    out->doc.start_implicit = out->doc.end_implicit = 1;
    (void)bmap(&p, 0, l.c);
    if (!p.rc) {
        skip_blank(&p);
        if (p.pos < len)
            p.rc = YML_DECLINE; /* something after the mapping */
    }
    free(p.buf);
    free(p.kids);
    if (p.rc)
        yml_free(out);
    return p.rc;
}

static bool same_node(yaml_node_t *x, yaml_node_t *y)
{
    if (x->type != y->type || x->start_mark.line != y->start_mark.line ||
        strcmp((const char *)x->tag, (const char *)y->tag) != 0)
        return false;
    switch (x->type) {
    case YAML_SCALAR_NODE:
        return x->data.scalar.length == y->data.scalar.length &&
               x->data.scalar.style == y->data.scalar.style &&
               memcmp(x->data.scalar.value, y->data.scalar.value, x->data.scalar.length) == 0;
    case YAML_SEQUENCE_NODE: {
        ptrdiff_t n = x->data.sequence.items.top - x->data.sequence.items.start;
        return x->data.sequence.style == y->data.sequence.style &&
               n == y->data.sequence.items.top - y->data.sequence.items.start &&
               !memcmp(x->data.sequence.items.start, y->data.sequence.items.start,
                       (size_t)n * sizeof(yaml_node_item_t));
    }
    case YAML_MAPPING_NODE: {
        ptrdiff_t n = x->data.mapping.pairs.top - x->data.mapping.pairs.start;
        return x->data.mapping.style == y->data.mapping.style &&
               n == y->data.mapping.pairs.top - y->data.mapping.pairs.start &&
               !memcmp(x->data.mapping.pairs.start, y->data.mapping.pairs.start,
                       (size_t)n * sizeof(yaml_node_pair_t));
    }
    default:
        return true;
    }
}

bool yml_same(yaml_document_t *a, yaml_document_t *b)
{
    ptrdiff_t n = a->nodes.top - a->nodes.start;
    if (n != b->nodes.top - b->nodes.start)
        return false;
    for (ptrdiff_t i = 0; i < n; i++)
        if (!same_node(a->nodes.start + i, b->nodes.start + i))
            return false;
    return true;
}
