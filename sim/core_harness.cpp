// Stimulus player for the Verilated herald core (heraldry.sim.verilog.CoreSimTop).
//
// Reads a stimulus file of "<cycle> <op> <args>" lines sorted by cycle, ticks the model as
// fast as it can, and writes one line per observed output event. Cycle 0 is the first cycle
// after reset; inputs of cycle t are applied, outputs of cycle t sampled, then the clock rises.
//
//   stimulus ops: N n_cycles | S (start) | P (stop) | C hex (config) | T addr data (table)
//                 K mask (click edges: high this cycle, low the next) | R level | E level
//   outputs:      A t | H t outcome | D t reason | U t (recal rise) | F t (recal fall)
//                 V t hex (record transferred) | Q t hex (counters, the cycle after done)
//   stderr:       "cycles <n> seconds <s>"

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "Vherald_core.h"
#include "verilated.h"

namespace {

std::vector<uint32_t> parse_hex(const char* text) {
    std::vector<uint32_t> words;
    size_t n = strlen(text);
    for (size_t end = n; end > 0;) {
        size_t begin = end >= 8 ? end - 8 : 0;
        words.push_back(static_cast<uint32_t>(strtoul(std::string(text + begin, end - begin).c_str(),
                                                      nullptr, 16)));
        end = begin;
    }
    return words;
}

template <std::size_t N>
void set_words(VlWide<N>& signal, const std::vector<uint32_t>& words) {
    for (std::size_t i = 0; i < N; i++) signal[i] = i < words.size() ? words[i] : 0;
}

template <typename T>
std::enable_if_t<std::is_integral_v<T>> set_words(T& signal, const std::vector<uint32_t>& words) {
    uint64_t value = 0;
    for (std::size_t i = 0; i < words.size() && i < 2; i++) value |= uint64_t(words[i]) << (32 * i);
    signal = static_cast<T>(value);
}

template <std::size_t N>
void print_hex(FILE* out, const VlWide<N>& signal) {
    for (std::size_t i = N; i-- > 0;) fprintf(out, "%08x", signal[i]);
}

template <typename T>
std::enable_if_t<std::is_integral_v<T>> print_hex(FILE* out, const T& signal) {
    fprintf(out, "%llx", static_cast<unsigned long long>(signal));
}

struct Event {
    uint64_t cycle;
    char op;
    std::string arg1, arg2;
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s STIMULUS OUTPUT\n", argv[0]);
        return 2;
    }
    FILE* in = fopen(argv[1], "r");
    FILE* out = fopen(argv[2], "w");
    if (!in || !out) {
        perror("open");
        return 2;
    }
    static char out_buffer[1 << 20];
    setvbuf(out, out_buffer, _IOFBF, sizeof out_buffer);

    uint64_t n_cycles = 0;
    std::vector<Event> events;
    char line[4096];
    while (fgets(line, sizeof line, in)) {
        char op = 0;
        unsigned long long cycle = 0;
        char a[2048] = "", b[2048] = "";
        if (line[0] == 'N') {
            n_cycles = strtoull(line + 1, nullptr, 10);
            continue;
        }
        if (sscanf(line, "%llu %c %2047s %2047s", &cycle, &op, a, b) < 2) continue;
        events.push_back({cycle, op, a, b});
    }
    fclose(in);

    VerilatedContext context;
    Vherald_core top{&context};
    top.clk = 0;
    top.rst = 1;
    for (int i = 0; i < 3; i++) {
        top.clk = 0; top.eval();
        top.clk = 1; top.eval();
    }
    top.rst = 0;

    size_t next = 0;
    bool recal = false;
    int64_t counters_at = -1;
    auto started = std::chrono::steady_clock::now();
    for (uint64_t t = 0; t < n_cycles; t++) {
        top.start = 0;
        top.stop = 0;
        top.table_en = 0;
        top.clicks = 0;
        for (; next < events.size() && events[next].cycle == t; next++) {
            const Event& e = events[next];
            switch (e.op) {
                case 'S': top.start = 1; break;
                case 'P': top.stop = 1; break;
                case 'C': set_words(top.cfg, parse_hex(e.arg1.c_str())); break;
                case 'T':
                    top.table_addr = strtoul(e.arg1.c_str(), nullptr, 10);
                    top.table_data = strtoul(e.arg2.c_str(), nullptr, 10);
                    top.table_en = 1;
                    break;
                case 'K': top.clicks = strtoul(e.arg1.c_str(), nullptr, 10); break;
                case 'R': top.ready = e.arg1 == "1"; break;
                case 'E': top.events_ready = e.arg1 == "1"; break;
                default: fprintf(stderr, "unknown op %c at cycle %llu\n", e.op,
                                 static_cast<unsigned long long>(t)); return 2;
            }
        }
        top.clk = 0;
        top.eval();
        if (top.attempt) fprintf(out, "A %llu\n", static_cast<unsigned long long>(t));
        if (top.herald) fprintf(out, "H %llu %u\n", static_cast<unsigned long long>(t),
                                unsigned(top.outcome));
        if (counters_at == static_cast<int64_t>(t)) {
            fprintf(out, "Q %llu ", static_cast<unsigned long long>(t));
            print_hex(out, top.counters);
            fputc('\n', out);
            counters_at = -1;
        }
        if (top.done) {
            fprintf(out, "D %llu %u\n", static_cast<unsigned long long>(t), unsigned(top.reason));
            counters_at = static_cast<int64_t>(t) + 1;
        }
        if (bool(top.recal) != recal) {
            fprintf(out, "%c %llu\n", top.recal ? 'U' : 'F', static_cast<unsigned long long>(t));
            recal = top.recal;
        }
        if (top.events_valid && top.events_ready) {
            fprintf(out, "V %llu ", static_cast<unsigned long long>(t));
            print_hex(out, top.events_payload);
            fputc('\n', out);
        }
        top.clk = 1;
        top.eval();
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    fclose(out);
    fprintf(stderr, "cycles %llu seconds %.6f\n", static_cast<unsigned long long>(n_cycles), seconds);
    top.final();
    return 0;
}
