// Compiled bulk-regression harness around one generated stream unit (sim/bulk.py).
//
// Streams fixed-size input payload records (little-endian 32-bit words) from a file
// into the unit's valid/ready sink with seeded random valid gaps (valid and payload held
// until accepted), drives the source's ready with seeded random backpressure, and writes
// every transferred output payload (and its cycle) to files. Same cycle semantics as the
// cocotb testbench (tb/stream.py): each rising edge sees the inputs of its cycle, and the
// handshakes are sampled with the values that edge sees.
//
// The model is not the unit itself but a testbench wrapper around it (sim/bulk.py,
// `bulk_wrapper`) that registers the unit's inputs (clock, reset, valid, payload, ready)
// in flip-flops: the harness writes the inputs of cycle c + 1 into the wrapper's ports,
// and the same rising edge that ends cycle c moves them to the unit (which sees the
// cycle-c values at that edge, non-blocking assignment order). So no top-level input
// feeds the unit's logic combinationally, and Verilator evaluates that logic once per
// cycle (after the edge, in its NBA region) instead of three times (its input-
// combinational region runs on every eval(), and the unit's whole datapath depends on
// o_ready through the pipeline enables). The cycle-by-cycle behaviour at the unit's
// ports is the same as driving them directly after the falling edge.
//
// The port names and the top class come from sim/bulk.py as -D macros:
// BULK_TOP (class), BULK_TOP_H (header), BULK_CLK, BULK_RST, BULK_I_VALID, BULK_I_READY,
// BULK_I_PAYLOAD, BULK_O_VALID, BULK_O_READY, BULK_O_PAYLOAD.
//
// usage: Vbulk IN OUT OUT_CYCLES N_IN IN_WORDS OUT_WORDS GAP BACKPRESSURE SEED
//              MAX_CYCLES DRAIN_CYCLES [TRACE_FILE TRACE_FROM TRACE_TO]
// exit 0: ran (the comparison is Python's); 3: cycle budget exceeded; 2: bad usage/IO.
// Prints one JSON line of counters on stdout.

#include <chrono>
#include <ctime>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "verilated.h"
#include BULK_TOP_H
#if VM_TRACE_FST
#include "verilated_fst_c.h"
typedef VerilatedFstC TraceFile;
#elif VM_TRACE
#include "verilated_vcd_c.h"
typedef VerilatedVcdC TraceFile;
#endif

namespace {

// payload <-> words, for every Verilator port type
inline void put(CData& d, const uint32_t* s) { d = static_cast<CData>(s[0]); }
inline void put(SData& d, const uint32_t* s) { d = static_cast<SData>(s[0]); }
inline void put(IData& d, const uint32_t* s) { d = s[0]; }
inline void put(QData& d, const uint32_t* s) { d = s[0] | (static_cast<QData>(s[1]) << 32); }
template <std::size_t N>
inline void put(VlWide<N>& d, const uint32_t* s) {
    for (std::size_t i = 0; i < N; ++i) d[i] = s[i];
}
inline void get(const CData& d, uint32_t* o) { o[0] = d; }
inline void get(const SData& d, uint32_t* o) { o[0] = d; }
inline void get(const IData& d, uint32_t* o) { o[0] = d; }
inline void get(const QData& d, uint32_t* o) {
    o[0] = static_cast<uint32_t>(d);
    o[1] = static_cast<uint32_t>(d >> 32);
}
template <std::size_t N>
inline void get(const VlWide<N>& d, uint32_t* o) {
    for (std::size_t i = 0; i < N; ++i) o[i] = d[i];
}
template <typename T>
constexpr std::size_t words_of(const T&) { return sizeof(T) <= 4 ? 1 : (sizeof(T) + 3) / 4; }

// splitmix64: seeded, portable
struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed) {}
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    // true with probability p (p == 0: never draws)
    bool chance(double p) { return p > 0 && (next() >> 11) * (1.0 / 9007199254740992.0) < p; }
};

int fail(const char* msg) {
    std::fprintf(stderr, "bulk harness: %s\n", msg);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 12 && argc != 15) return fail("usage: see sim/bulk_harness.cpp");
    const char* in_path = argv[1];
    const char* out_path = argv[2];
    const char* cyc_path = argv[3];
    const uint64_t n_in = std::strtoull(argv[4], nullptr, 10);
    const std::size_t in_words = std::strtoull(argv[5], nullptr, 10);
    const std::size_t out_words = std::strtoull(argv[6], nullptr, 10);
    const double gap = std::atof(argv[7]);
    const double bp = std::atof(argv[8]);
    const uint64_t seed = std::strtoull(argv[9], nullptr, 10);
    const uint64_t max_cycles = std::strtoull(argv[10], nullptr, 10);
    const uint64_t drain = std::strtoull(argv[11], nullptr, 10);

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->commandArgs(1, argv);  // no plusargs for the model
    auto top = std::make_unique<BULK_TOP>(ctx.get());
    if (words_of(top->BULK_I_PAYLOAD) != in_words || words_of(top->BULK_O_PAYLOAD) != out_words)
        return fail("payload word counts do not match the built model");

    std::vector<uint32_t> in(n_in * in_words);
    {
        FILE* f = std::fopen(in_path, "rb");
        if (!f) return fail("cannot open the input file");
        const std::size_t got = std::fread(in.data(), sizeof(uint32_t), in.size(), f);
        std::fclose(f);
        if (got != in.size()) return fail("input file is shorter than N_IN records");
    }
    std::vector<uint32_t> out;
    std::vector<uint64_t> out_cycles;
    out.reserve((n_in + 16) * out_words);
    out_cycles.reserve(n_in + 16);

#if VM_TRACE
    std::unique_ptr<TraceFile> tfp;
    uint64_t trace_from = 0, trace_to = 0;
    if (argc == 15) {
        Verilated::traceEverOn(true);
        tfp = std::make_unique<TraceFile>();
        top->trace(tfp.get(), 99);
        tfp->open(argv[12]);
        trace_from = std::strtoull(argv[13], nullptr, 10);
        trace_to = std::strtoull(argv[14], nullptr, 10);
    }
#define BULK_DUMP(c, t) \
    if (tfp && (c) >= trace_from && (c) <= trace_to) tfp->dump(t)
#else
    if (argc == 15) return fail("waves requested from a build without tracing");
#define BULK_DUMP(c, t)
#endif

    Rng rin(seed * 2 + 1), rout(seed * 2 + 2);
    uint64_t idx = 0, cycle = 0, n_out = 0, idle = 0;
    uint64_t drain_left = drain;
    bool presenting = false, draining = false, ready = false;
    // the inputs of the next cycle, into the wrapper's ports (the unit gets them at the
    // next rising edge)
    auto next_inputs = [&]() {
        if (!presenting && idx < n_in) {
            if (rin.chance(gap)) {
                top->BULK_I_VALID = 0;
            } else {
                put(top->BULK_I_PAYLOAD, &in[idx * in_words]);
                top->BULK_I_VALID = 1;
                presenting = true;
            }
        } else if (idx >= n_in) {
            top->BULK_I_VALID = 0;
        }
        draining = n_out >= n_in && idx >= n_in;
        ready = draining || !rout.chance(bp);  // ready held high while draining
        top->BULK_O_READY = ready;
    };
    // reset: 3 cycles with rst high, valid and ready low (the cocotb bench does the
    // same; the wrapper's registers start so); the third reset edge brings the inputs of
    // cycle 0
    top->BULK_I_VALID = 0;
    top->BULK_O_READY = 0;
    top->BULK_RST = 1;
    top->BULK_CLK = 0;
    top->eval();
    for (int i = 0; i < 3; ++i) {
        if (i == 2) {
            top->BULK_RST = 0;
            next_inputs();
        }
        top->BULK_CLK = 0;
        top->eval();
        top->BULK_CLK = 1;
        top->eval();
    }

    const auto t0 = std::chrono::steady_clock::now();
    const std::clock_t c0 = std::clock();
    int rc = 0;
    for (;; ++cycle) {
        if (cycle >= max_cycles) {
            rc = 3;
            break;
        }
        // the unit's outputs with the inputs of this cycle (settled after the last edge):
        // the handshakes this cycle's rising edge will see
        const bool acc = presenting && top->BULK_I_READY;
        if (ready && top->BULK_O_VALID) {
            out.resize(out.size() + out_words);
            get(top->BULK_O_PAYLOAD, &out[n_out * out_words]);
            out_cycles.push_back(cycle);
            ++n_out;
            idle = 0;
        } else {
            ++idle;
        }
        if (acc) {
            ++idx;
            presenting = false;
        }
        if (draining) {  // nothing more may come out with ready high
            if (drain_left-- == 0) break;
        } else if (idx >= n_in && idle > drain) {
            break;  // inputs done and the output went quiet: a block was lost
        }
        next_inputs();
        // this cycle's rising edge: two evaluations, the falling edge (only the
        // wrapper's input ports changed: nothing of the unit runs) and the rising edge
        top->BULK_CLK = 0;
        top->eval();
        BULK_DUMP(cycle, 10 * cycle + 5);
        top->BULK_CLK = 1;
        top->eval();
        BULK_DUMP(cycle, 10 * cycle + 10);
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
                            .count();
    const double cpu = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
#if VM_TRACE
    if (tfp) tfp->close();
#endif
    top->final();
    FILE* f = std::fopen(out_path, "wb");
    if (!f) return fail("cannot open the output file");
    std::fwrite(out.data(), sizeof(uint32_t), out.size(), f);
    std::fclose(f);
    f = std::fopen(cyc_path, "wb");
    if (!f) return fail("cannot open the output-cycles file");
    std::fwrite(out_cycles.data(), sizeof(uint64_t), out_cycles.size(), f);
    std::fclose(f);
    std::printf("{\"cycles\": %" PRIu64 ", \"accepted\": %" PRIu64 ", \"n_out\": %" PRIu64
                ", \"sim_wall_s\": %.6f, \"sim_cpu_s\": %.6f, \"budget_exceeded\": %s}\n",
                cycle, idx, n_out, wall, cpu, rc == 3 ? "true" : "false");
    return rc;
}
