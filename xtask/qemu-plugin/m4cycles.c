/*
 * m4cycles: a QEMU TCG plugin that estimates Cortex-M4 cycles from the instructions a guest
 * executes, region by region.
 *
 * Each instruction is classified once, when QEMU translates it, from its disassembly, and
 * given its Cortex-M4 cost (Cortex-M4 Technical Reference Manual, "Processor instruction
 * timings"); zero wait-state memory is assumed. At run time the plugin adds, per executed
 * instruction: the base cost; minus one for a single load or store that directly follows
 * another (the M4 pipelines their address and data phases); plus BRANCH_REFILL when the next
 * instruction is not the one after it in memory (a taken branch, a return, an exception).
 *
 * Regions: every time the guest executes the instruction at address `mark=` (the firmware's
 * `tinyvae_mark` function), the plugin writes one line to `out=`: the instructions, estimated
 * cycles and per-class counts since the previous mark. Built by `cargo xtask cycles` against
 * the plugin header of the installed QEMU version.
 *
 * Arguments: mark=ADDRESS (hex, Thumb bit ignored), out=PATH; optionally profile=PATH, where
 * at exit each executed instruction's address gets one line: "ADDRESS executions cycles"
 * (for finding where a kernel's cycles go; map addresses to functions with the ELF's symbols),
 * and with it region=N: the profile counts only region N (0 before the first mark).
 */
#include <glib.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qemu-plugin.h>

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

/* Pipeline refill after a taken branch: 1 to 3 cycles on the M4 (target alignment and
 * width); the estimate takes the middle. */
#define BRANCH_REFILL 2
/* SDIV/UDIV: 2 to 12 cycles, depending on the operands; the estimate takes the middle. */
#define DIVIDE 7

enum cls {
    C_ALU,   /* data processing, moves, extends, bit fields, compares, IT */
    C_MUL,   /* MUL, MLA, long multiplies, DSP multiply-accumulates (SMLAD...) */
    C_DIV,   /* SDIV, UDIV */
    C_LOAD,  /* single loads, LDR* */
    C_STORE, /* single stores, STR* */
    C_LDM,   /* LDM, POP, LDRD */
    C_STM,   /* STM, PUSH, STRD */
    C_BRANCH,/* B, BL, BX, BLX, CBZ, CBNZ, TBB, TBH */
    C_FP,    /* VADD, VSUB, VMUL, VMOV, VCVT, VCMP, VABS, VNEG, VMRS... */
    C_FPMAC, /* VMLA, VMLS, VFMA, VFMS, VNMLA... */
    C_FPDIV, /* VDIV, VSQRT */
    C_FPMEM, /* VLDR, VSTR, VLDM, VSTM, VPUSH, VPOP */
    C_COUNT
};

static const char *cls_name[C_COUNT] = {
    "alu", "mul", "div", "load", "store", "ldm", "stm", "branch",
    "fp", "fpmac", "fpdiv", "fpmem",
};

struct insn {
    uint64_t vaddr;
    uint32_t size;
    uint32_t cost;   /* base cycles */
    int cls;
    int single_mem;  /* a single load or store: pipelines with a neighbour */
    int mark;        /* the region marker */
    uint64_t runs;   /* profile: executions */
    uint64_t spent;  /* profile: estimated cycles */
};

static uint64_t mark_addr = UINT64_MAX;
static FILE *out;
static uint64_t next_pc = UINT64_MAX;
static int prev_single_mem;
static uint64_t insns, cycles, counts[C_COUNT];
static uint64_t last_insns, last_cycles, last_counts[C_COUNT];
static unsigned region;
static FILE *profile;
static int only_region = -1; /* region=N: the profile's only region; -1 all */
static GPtrArray *translated; /* every struct insn, for the profile */

/* Registers in a "{r4, r5, lr}" or "{s0-s3}" list. */
static unsigned reg_list_len(const char *s)
{
    const char *open = strchr(s, '{');
    const char *close = open ? strchr(open, '}') : NULL;
    if (!open || !close) {
        return 1;
    }
    unsigned n = 0;
    const char *p = open + 1;
    while (p < close) {
        const char *end = memchr(p, ',', close - p);
        if (!end) {
            end = close;
        }
        const char *dash = memchr(p, '-', end - p);
        if (dash) {
            /* A range: r4-r7 or s0-s15, by the numbers after the letters. */
            const char *a = p, *b = dash + 1;
            while (a < dash && (*a < '0' || *a > '9')) {
                a++;
            }
            while (b < end && (*b < '0' || *b > '9')) {
                b++;
            }
            long lo = strtol(a, NULL, 10), hi = strtol(b, NULL, 10);
            n += hi >= lo ? (unsigned)(hi - lo + 1) : 1;
        } else {
            n++;
        }
        p = end + 1;
    }
    return n ? n : 1;
}

static int starts(const char *m, const char *prefix)
{
    return strncmp(m, prefix, strlen(prefix)) == 0;
}

static int is_cond(const char *c)
{
    static const char *conds[] = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs",
                                  "vc", "hi", "ls", "ge", "lt", "gt", "le", "al"};
    for (size_t i = 0; i < sizeof conds / sizeof *conds; i++) {
        if (strcmp(c, conds[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

static void classify(const char *disas, struct insn *in)
{
    char m[32] = {0};
    size_t k = 0;
    while (disas[k] && disas[k] != ' ' && disas[k] != '\t' && k < sizeof m - 1) {
        m[k] = disas[k];
        k++;
    }
    char *dot = strchr(m, '.');
    if (dot && m[0] != 'v') {
        *dot = 0; /* ".w", ".n" width qualifiers */
    }
    in->cost = 1;
    in->cls = C_ALU;
    in->single_mem = 0;
    unsigned regs = reg_list_len(disas);

    if (m[0] == 'v') {
        if (starts(m, "vldm") || starts(m, "vstm") || starts(m, "vpush") ||
            starts(m, "vpop")) {
            in->cls = C_FPMEM;
            in->cost = 1 + regs;
        } else if (starts(m, "vldr") || starts(m, "vstr")) {
            in->cls = C_FPMEM;
            in->cost = 2;
            in->single_mem = 1;
        } else if (starts(m, "vmla") || starts(m, "vmls") || starts(m, "vfma") ||
                   starts(m, "vfms") || starts(m, "vnmla") || starts(m, "vnmls") ||
                   starts(m, "vfnm")) {
            in->cls = C_FPMAC;
            in->cost = 3;
        } else if (starts(m, "vdiv") || starts(m, "vsqrt")) {
            in->cls = C_FPDIV;
            in->cost = 14;
        } else {
            in->cls = C_FP;
        }
        return;
    }
    if (starts(m, "ldm") || starts(m, "pop")) {
        in->cls = C_LDM;
        in->cost = 1 + regs;
    } else if (starts(m, "stm") || starts(m, "push")) {
        in->cls = C_STM;
        in->cost = 1 + regs;
    } else if (starts(m, "ldrd") || starts(m, "strd")) {
        in->cls = m[0] == 'l' ? C_LDM : C_STM;
        in->cost = 3;
    } else if (starts(m, "ldr") || starts(m, "ldrex")) {
        in->cls = C_LOAD;
        in->cost = 2;
        in->single_mem = 1;
    } else if (starts(m, "str")) {
        in->cls = C_STORE;
        in->cost = 2;
        in->single_mem = 1;
    } else if (strcmp(m, "sdiv") == 0 || strcmp(m, "udiv") == 0) {
        in->cls = C_DIV;
        in->cost = DIVIDE;
    } else if (starts(m, "mul") || starts(m, "mla") || starts(m, "mls") ||
               starts(m, "smul") || starts(m, "umul") || starts(m, "smla") ||
               starts(m, "umla") || starts(m, "smlsl") || starts(m, "smls") ||
               starts(m, "smmul") || starts(m, "smmla") || starts(m, "smmls") ||
               starts(m, "smuad") || starts(m, "smusd") || starts(m, "umaal")) {
        in->cls = C_MUL;
    } else if (strcmp(m, "b") == 0 || strcmp(m, "bl") == 0 || strcmp(m, "bx") == 0 ||
               strcmp(m, "blx") == 0 || strcmp(m, "cbz") == 0 || strcmp(m, "cbnz") == 0 ||
               strcmp(m, "tbb") == 0 || strcmp(m, "tbh") == 0 ||
               (m[0] == 'b' && strlen(m) == 3 && is_cond(m + 1))) {
        in->cls = C_BRANCH;
    }
}

static void snapshot(void)
{
    if (out) {
        fprintf(out, "region %u insns %" PRIu64 " cycles %" PRIu64, region,
                insns - last_insns, cycles - last_cycles);
        for (int c = 0; c < C_COUNT; c++) {
            fprintf(out, " %s %" PRIu64, cls_name[c], counts[c] - last_counts[c]);
        }
        fputc('\n', out);
        fflush(out);
    }
    region++;
    last_insns = insns;
    last_cycles = cycles;
    memcpy(last_counts, counts, sizeof counts);
}

static void exec(unsigned int vcpu, void *udata)
{
    const struct insn *in = udata;
    (void)vcpu;
    if (next_pc != UINT64_MAX && in->vaddr != next_pc) {
        cycles += BRANCH_REFILL; /* the previous instruction branched */
    }
    if (in->mark) {
        snapshot();
    }
    uint64_t cost = in->cost;
    if (in->single_mem && prev_single_mem && cost > 1) {
        cost--;
    }
    cycles += cost;
    if (profile && (only_region < 0 || (int)region == only_region)) {
        struct insn *mut = (struct insn *)in;
        mut->runs++;
        mut->spent += cost + (next_pc != UINT64_MAX && in->vaddr != next_pc ? BRANCH_REFILL : 0);
    }
    insns++;
    counts[in->cls]++;
    prev_single_mem = in->single_mem;
    next_pc = in->vaddr + in->size;
}

static void translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *qi = qemu_plugin_tb_get_insn(tb, i);
        struct insn *in = g_new0(struct insn, 1);
        in->vaddr = qemu_plugin_insn_vaddr(qi);
        in->size = (uint32_t)qemu_plugin_insn_size(qi);
        char *d = qemu_plugin_insn_disas(qi);
        classify(d ? d : "", in);
        g_free(d);
        in->mark = (in->vaddr & ~(uint64_t)1) == mark_addr;
        if (profile) {
            g_ptr_array_add(translated, in);
        }
        qemu_plugin_register_vcpu_insn_exec_cb(qi, exec, QEMU_PLUGIN_CB_NO_REGS, in);
    }
}

static void at_exit(qemu_plugin_id_t id, void *p)
{
    (void)id;
    (void)p;
    snapshot();
    if (out) {
        fclose(out);
        out = NULL;
    }
    if (profile) {
        /* The same address may have been translated more than once: sum by address. */
        GHashTable *by = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, g_free);
        for (guint i = 0; i < translated->len; i++) {
            struct insn *in = g_ptr_array_index(translated, i);
            uint64_t *acc = g_hash_table_lookup(by, &in->vaddr);
            if (!acc) {
                acc = g_new0(uint64_t, 3);
                acc[0] = in->vaddr;
                g_hash_table_insert(by, &acc[0], acc);
            }
            acc[1] += in->runs;
            acc[2] += in->spent;
        }
        GHashTableIter it;
        gpointer k, v;
        g_hash_table_iter_init(&it, by);
        while (g_hash_table_iter_next(&it, &k, &v)) {
            uint64_t *acc = v;
            if (acc[1]) {
                fprintf(profile, "%" PRIx64 " %" PRIu64 " %" PRIu64 "\n", acc[0], acc[1], acc[2]);
            }
        }
        g_hash_table_destroy(by);
        fclose(profile);
        profile = NULL;
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "mark=", 5) == 0) {
            mark_addr = strtoull(argv[i] + 5, NULL, 16) & ~(uint64_t)1;
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            out = fopen(argv[i] + 4, "w");
            if (!out) {
                fprintf(stderr, "m4cycles: cannot write %s\n", argv[i] + 4);
                return 1;
            }
        } else if (strncmp(argv[i], "profile=", 8) == 0) {
            profile = fopen(argv[i] + 8, "w");
            if (!profile) {
                fprintf(stderr, "m4cycles: cannot write %s\n", argv[i] + 8);
                return 1;
            }
            translated = g_ptr_array_new();
        } else if (strncmp(argv[i], "region=", 7) == 0) {
            only_region = atoi(argv[i] + 7);
        } else {
            fprintf(stderr, "m4cycles: unknown argument %s\n", argv[i]);
            return 1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, translate);
    qemu_plugin_register_atexit_cb(id, at_exit, NULL);
    return 0;
}
