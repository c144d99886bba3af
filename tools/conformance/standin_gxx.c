/* The stand-in riscv-tt-elf-g++ of standin_gxx.py, in C: the same behaviour (that file documents it), without
 * a Python start per call. tt-metal's JIT calls the compiler about 10 times per program (compile and link per
 * RISC-V), which made the Python stand-in (~100 ms a start on a loaded machine) most of a mock run's time.
 * check.py builds this with the host C compiler when it can and falls back to the Python wrapper otherwise.
 *
 * It answers --version, appends {"cwd": ..., "argv": [...]} to $TT_SPECDEC_JIT_LOG in one write, fails on
 * purpose when an argument contains $TT_SPECDEC_STANDIN_FAIL, and writes: an empty object (-c -o X.o) with a
 * dependency file under -MMD; nothing for a precompiled header; a minimal RISC-V ELF32 executable for a link
 * (-o X.elf), its text at the address the linker script (-T) gives .text (0 for a symbol). */
#include <ctype.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef STANDIN_MARKER
#define STANDIN_MARKER "tt_specdec conformance stand-in"
#endif
/* in the binary: check.py refuses to overwrite a compiler that does not carry it */
const char standin_marker[] = STANDIN_MARKER;

static const char *VERSION =
    "riscv-tt-elf-g++ (tt_specdec conformance stand-in, in C: records the JIT command lines, compiles nothing) "
    "12.4.0";

/* ---- a growable buffer ---- */
typedef struct { char *p; size_t n, cap; } buf;
static void put(buf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p) exit(3);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }
static void put_json_string(buf *b, const char *s) {
    puts_(b, "\"");
    for (; *s; ++s) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; put(b, esc, 2); }
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); puts_(b, esc); }
        else put(b, s, 1);
    }
    puts_(b, "\"");
}

/* ---- the linker script's .text address: arithmetic on integers (+ - * / & | ~ parentheses) ---- */
static const char *ep;
static int eok;
static int64_t expr_or(void);
static void skip(void) { while (*ep && isspace((unsigned char)*ep)) ++ep; }
static int64_t primary(void) {
    skip();
    if (*ep == '(') { ++ep; int64_t v = expr_or(); skip(); if (*ep == ')') ++ep; else eok = 0; return v; }
    if (*ep == '~') { ++ep; return ~primary(); }
    if (*ep == '-') { ++ep; return -primary(); }
    if (*ep == '+') { ++ep; return primary(); }
    if (isdigit((unsigned char)*ep)) { char *end; int64_t v = (int64_t)strtoll(ep, &end, 0); ep = end; return v; }
    eok = 0;
    return 0;
}
static int64_t mul(void) {
    int64_t v = primary();
    for (;;) { skip();
        if (*ep == '*') { ++ep; v *= primary(); }
        else if (*ep == '/') { ++ep; int64_t d = primary(); if (d == 0) { eok = 0; return 0; } v /= d; }
        else return v; }
}
static int64_t add(void) {
    int64_t v = mul();
    for (;;) { skip();
        if (*ep == '+') { ++ep; v += mul(); } else if (*ep == '-') { ++ep; v -= mul(); } else return v; }
}
static int64_t expr_and(void) { int64_t v = add(); for (;;) { skip(); if (*ep == '&') { ++ep; v &= add(); } else return v; } }
static int64_t expr_or(void) { int64_t v = expr_and(); for (;;) { skip(); if (*ep == '|') { ++ep; v |= expr_and(); } else return v; } }

static uint32_t text_address(int argc, char **argv) {
    for (int i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "-T", 2) != 0) continue;
        FILE *f = fopen(argv[i] + 2, "r");
        if (!f) continue;
        char line[4096];
        uint32_t addr = 0;
        int found = 0;
        while (!found && fgets(line, sizeof line, f)) {  /* ^\s*\.text\s+(expr)\s*:\s*$ */
            char *s = line;
            while (isspace((unsigned char)*s)) ++s;
            if (strncmp(s, ".text", 5) != 0 || !isspace((unsigned char)s[5])) continue;
            s += 5;
            size_t n = strlen(s);
            while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
            if (!n || s[n - 1] != ':') continue;
            s[--n] = 0;
            found = 1;
            for (char *c = s; *c; ++c)  /* arithmetic only, as the Python stand-in's check */
                if (!strchr("0123456789xXabcdefABCDEF+-*/&|~() \t", *c)) { found = 2; break; }
            if (found == 2) { addr = 0; break; }
            ep = s; eok = 1;
            int64_t v = expr_or();
            skip();
            addr = (eok && !*ep) ? (uint32_t)v : 0;
        }
        fclose(f);
        if (found == 1) return addr;  /* else the next -T, as the Python stand-in */
    }
    return 0;
}

/* ---- outputs ---- */
static void le16(buf *b, uint16_t v) { put(b, &v, 2); }
static void le32(buf *b, uint32_t v) { put(b, &v, 4); }

static int minimal_elf(const char *path, uint32_t addr) {
    static const char *names[] = {"", ".text", ".symtab", ".strtab", ".shstrtab", ".rela.text"};
    buf shstr = {0}, out = {0};
    uint32_t offs[6];
    for (int i = 0; i < 6; ++i) { offs[i] = (uint32_t)shstr.n; put(&shstr, names[i], strlen(names[i]) + 1); }
    const char strtab[] = "\0_start\0";  /* 8 bytes */
    const uint32_t text_len = 16, sym_len = 32, str_len = 8;
    const uint32_t ehsize = 52, phsize = 32, shsize = 40;
    const uint32_t o_text = ehsize + phsize, o_sym = o_text + text_len, o_str = o_sym + sym_len;
    const uint32_t o_shstr = o_str + str_len, o_sh = (o_shstr + (uint32_t)shstr.n + 3) & ~3u;
    const unsigned char ident[16] = {0x7f, 'E', 'L', 'F', 1, 1, 1, 0};
    put(&out, ident, 16);
    le16(&out, 2); le16(&out, 243); le32(&out, 1); le32(&out, addr); le32(&out, ehsize); le32(&out, o_sh);
    le32(&out, 0); le16(&out, ehsize); le16(&out, phsize); le16(&out, 1); le16(&out, shsize); le16(&out, 6);
    le16(&out, 4);
    uint32_t ph[8] = {1, o_text, addr, addr, text_len, text_len, 5, 4};  /* PT_LOAD R+X */
    put(&out, ph, sizeof ph);
    for (int i = 0; i < 4; ++i) le32(&out, 0x00000013);  /* four nops */
    char zero16[16] = {0};
    put(&out, zero16, 16);  /* the null symbol */
    le32(&out, 1); le32(&out, addr); le32(&out, 0);
    unsigned char info[2] = {(1 << 4) | 2, 0};  /* global FUNC */
    put(&out, info, 2); le16(&out, 1);
    put(&out, strtab, str_len);
    put(&out, shstr.p, shstr.n);
    while (out.n < o_sh) put(&out, "", 1);
    char zero40[40] = {0};
    put(&out, zero40, 40);
    uint32_t sh[5][10] = {
        {offs[1], 1, 6, addr, o_text, text_len, 0, 0, 4, 0},
        {offs[2], 2, 0, 0, o_sym, sym_len, 3, 1, 4, 16},
        {offs[3], 3, 0, 0, o_str, str_len, 0, 0, 1, 0},
        {offs[4], 3, 0, 0, o_shstr, (uint32_t)shstr.n, 0, 0, 1, 0},
        {offs[5], 4, 0x40, 0, o_sh, 0, 2, 1, 4, 12}};  /* empty SHT_RELA for .text */
    put(&out, sh, sizeof sh);
    FILE *f = fopen(path, "wb");
    if (!f) return 1;
    fwrite(out.p, 1, out.n, f);
    fclose(f);
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

int main(int argc, char **argv) {
    --argc; ++argv;
    if (argc >= 1 && (strcmp(argv[0], "--version") == 0 || strcmp(argv[0], "-dumpversion") == 0)) {
        puts(VERSION);
        return 0;
    }
    const char *log = getenv("TT_SPECDEC_JIT_LOG");
    if (log && *log) {
        buf line = {0};
        char cwd[8192];
        if (!getcwd(cwd, sizeof cwd)) cwd[0] = 0;
        puts_(&line, "{\"cwd\": ");
        put_json_string(&line, cwd);
        puts_(&line, ", \"argv\": [");
        for (int i = 0; i < argc; ++i) { if (i) puts_(&line, ", "); put_json_string(&line, argv[i]); }
        puts_(&line, "]}\n");
        int fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);
        if (fd >= 0) { ssize_t w = write(fd, line.p, line.n); (void)w; close(fd); }
    }
    const char *fail = getenv("TT_SPECDEC_STANDIN_FAIL");
    if (fail && *fail)
        for (int i = 0; i < argc; ++i)
            if (strstr(argv[i], fail)) {
                fprintf(stderr, "riscv-tt-elf-g++ (stand-in): failing on purpose (TT_SPECDEC_STANDIN_FAIL=%s)\n", fail);
                return 1;
            }
    const char *out = NULL;
    int mmd = 0, header = 0;
    const char *mf = NULL;
    for (int i = 0; i < argc; ++i) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc && !out) out = argv[i + 1];
        if (strcmp(argv[i], "-MMD") == 0) mmd = 1;
        if (strcmp(argv[i], "-MF") == 0 && i + 1 < argc && !mf) mf = argv[i + 1];
        if (strstr(argv[i], "c++-header")) header = 1;
    }
    if (!out) return 0;
    if (ends_with(out, ".elf")) return minimal_elf(out, text_address(argc, argv));
    if (header) return 0;  /* no precompiled header: the JIT then includes pch.h as text */
    FILE *f = fopen(out, "wb");
    if (!f) return 1;
    fclose(f);
    if (mmd) {
        buf dep = {0};
        if (mf) puts_(&dep, mf);
        else {
            puts_(&dep, out);
            char *dot = strrchr(dep.p, '.');
            char *slash = strrchr(dep.p, '/');
            if (dot && (!slash || dot > slash)) { dep.n = (size_t)(dot - dep.p); dep.p[dep.n] = 0; }
            puts_(&dep, ".d");
        }
        FILE *d = fopen(dep.p, "w");
        if (!d) return 1;
        fprintf(d, "%s:", out);
        for (int i = 0; i < argc; ++i)
            if (ends_with(argv[i], ".cc") || ends_with(argv[i], ".cpp") || ends_with(argv[i], ".c") ||
                ends_with(argv[i], ".S"))
                fprintf(d, " %s", argv[i]);
        fprintf(d, "\n");
        fclose(d);
    }
    return 0;
}
