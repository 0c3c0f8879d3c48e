// The virtual board: the Verilated heraldry SoC with its byte stream bridged to TCP.
//
// Listens on 127.0.0.1 only, serves one client at a time and keeps the device (and any run
// in progress) alive across reconnects. Both directions go through bounded buffers with
// back-pressure: bytes are read from the socket only while the receive buffer has room, and
// the device's tx stream is stalled (tx_ready low) while the send buffer has room for fewer
// than two bytes, so nothing is ever overwritten or dropped here. While the device is idle (no run, nothing to send or
// receive for QUIET_CYCLES cycles) the model stops ticking and the process sleeps in poll().
// The top (heraldry.sim.virtual_board.VirtualBoardTop) registers its inputs, so the
// falling edge has nothing to compute and is not evaluated (note_falling_edge); tx_ready is
// one of them, hence the two bytes. The host link has its own clock, which ticks only in cycles where the link
// has work (link_busy) or a byte arrives; in the others it would change nothing.
//
// usage: vboard [--port N] [--max-seconds S]
//   prints "listening PORT" on stdout once bound; on SIGTERM/SIGINT or after S seconds it
//   prints "cycles N tick_seconds T tick_cpu_seconds C" on stderr and exits 0 (T is wall
//   time spent ticking, C the process's CPU time in it).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "Vvirtual_board.h"
#include "Vvirtual_board___024root.h"
#include "verilated.h"

// The model's own evaluation, which Vvirtual_board::eval() calls before its end-of-eval
// bookkeeping (message queues of multi-threaded models and a mutex; about a tenth of the tick
// time, and this single-threaded model without $display has nothing for it). Weak, so that a
// Verilator naming it differently links and falls back to eval().
void Vvirtual_board___024root___eval(Vvirtual_board___024root* vlSelf) __attribute__((weak));

namespace {

volatile sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }

// A fixed-capacity byte ring: push fails when full, pop when empty; never overwrites.
struct Ring {
    static constexpr size_t capacity = 1 << 16;
    uint8_t data[capacity];
    size_t head = 0, size = 0;
    bool full() const { return size == capacity; }
    bool empty() const { return size == 0; }
    size_t room() const { return capacity - size; }
    uint8_t front() const { return data[head]; }
    void pop() { head = (head + 1) % capacity; size--; }
    void push(uint8_t byte) { data[(head + size) % capacity] = byte; size++; }
    // Contiguous readable / writable spans, for socket I/O without copies.
    size_t read_span(const uint8_t** out) const {
        *out = data + head;
        return std::min(size, capacity - head);
    }
    size_t write_span(uint8_t** out) {
        size_t tail = (head + size) % capacity;
        *out = data + tail;
        return std::min(room(), capacity - tail);
    }
    void consume(size_t n) { head = (head + n) % capacity; size -= n; }
    void commit(size_t n) { size += n; }
};

Ring rx, tx;

void set_nonblocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

void eval(Vvirtual_board& top) {
    if (Vvirtual_board___024root___eval) Vvirtual_board___024root___eval(top.rootp);
    else top.eval();
}

// The falling edge: the model finds a rising edge against the clock levels of its last
// evaluation, and the falling edge changes nothing else (see the top), so the levels are
// noted as an evaluation would note them, without one. A model that keeps them under other
// names is evaluated instead.
template <typename Root>
auto note_falling_edge(Vvirtual_board&, Root* root, int)
    -> decltype(root->__Vtrigprevexpr___TOP__clk__0 = 0, void()) {
    root->__Vtrigprevexpr___TOP__clk__0 = 0;
    root->__Vtrigprevexpr___TOP__link_clk__0 = 0;
}
template <typename Root>
void note_falling_edge(Vvirtual_board& top, Root*, long) {
    eval(top);
}

void set_inputs(Vvirtual_board& top) {
    top.rx_valid = !rx.empty();
    top.rx_data = rx.empty() ? 0 : rx.front();
    top.tx_ready = tx.room() >= 2;
}

double cpu_seconds() {
    timespec now;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
    return now.tv_sec + now.tv_nsec * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
    int port = 0;
    double max_seconds = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-seconds") && i + 1 < argc) max_seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--port N] [--max-seconds S]\n", argv[0]);
            return 2;
        }
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // never reachable from outside
    address.sin_port = htons(port);
    if (bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        listen(listener, 1) != 0) {
        fprintf(stderr, "cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }
    socklen_t length = sizeof address;
    getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
    set_nonblocking(listener);
    printf("listening %d\n", ntohs(address.sin_port));
    fflush(stdout);

    VerilatedContext context;
    Vvirtual_board top{&context};
    top.clk = 0;
    top.eval();  // initial values (the board has no reset: it starts as configured)

    int client = -1;
    uint64_t cycles = 0;
    uint64_t quiet = 0;  // cycles without a run, a received or a sent byte
    double tick_seconds = 0, tick_cpu_seconds = 0;
    auto started = std::chrono::steady_clock::now();
    constexpr int chunk = 4096;  // cycles between socket checks while busy

    while (!stop_requested) {
        if (max_seconds > 0 &&
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count() >
                max_seconds)
            break;
        // Long quiet, not merely between two frames: the device may still be composing one.
        constexpr uint64_t QUIET_CYCLES = 1 << 17;
        bool idle = quiet >= QUIET_CYCLES && rx.empty() && tx.empty();
        // Socket I/O; block (briefly) only when the device has nothing to do.
        pollfd fds[1];
        fds[0].fd = client >= 0 ? client : listener;
        fds[0].events = POLLIN | (client >= 0 && !tx.empty() ? POLLOUT : 0);
        if (client >= 0 && rx.full()) fds[0].events &= ~POLLIN;  // back-pressure to TCP
        int ready = poll(fds, 1, idle ? 50 : 0);
        if (ready > 0 && client < 0 && (fds[0].revents & POLLIN)) {
            client = accept(listener, nullptr, nullptr);
            if (client >= 0) {
                set_nonblocking(client);
                setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            }
        } else if (ready > 0 && client >= 0) {
            bool closed = fds[0].revents & (POLLHUP | POLLERR);
            if (fds[0].revents & POLLIN) {
                uint8_t* span;
                size_t room = rx.write_span(&span);
                ssize_t n = room ? recv(client, span, room, 0) : 0;
                if (n > 0) rx.commit(size_t(n));
                else if (n == 0 && room) closed = true;
                else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) closed = true;
            }
            if (!closed && (fds[0].revents & POLLOUT)) {
                const uint8_t* span;
                size_t pending = tx.read_span(&span);
                ssize_t n = send(client, span, pending, 0);
                if (n > 0) tx.consume(size_t(n));
                else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) closed = true;
            }
            if (closed) {
                // The device keeps running; bytes it still sends wait in tx (bounded) for
                // the next client, which resynchronises on frame boundaries.
                close(client);
                client = -1;
            }
        }
        if (idle && rx.empty()) continue;

        auto tick_start = std::chrono::steady_clock::now();
        double cpu_start = cpu_seconds();
        // The inputs follow the buffers, which change only here by a transfer (after the
        // edge that makes it) and between chunks. Bytes move only at a link clock edge.
        set_inputs(top);
        int last_active = -1;  // the chunk's last cycle with a run or a transfer
        for (int i = 0; i < chunk; i++) {
            top.clk = 0;
            top.link_clk = 0;
            note_falling_edge(top, top.rootp, 0);
            bool link = top.link_busy || top.rx_valid;
            bool transfer = false;
            if (link) {
                if (top.rx_valid && top.rx_ready) { rx.pop(); transfer = true; }
                if (top.tx_valid) { tx.push(top.tx_data); transfer = true; }
            }
            if (top.running || transfer) last_active = i;
            top.clk = 1;
            top.link_clk = link;
            eval(top);
            if (transfer) set_inputs(top);
        }
        quiet = last_active < 0 ? quiet + chunk : uint64_t(chunk - 1 - last_active);
        cycles += chunk;
        tick_seconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - tick_start).count();
        tick_cpu_seconds += cpu_seconds() - cpu_start;
    }
    if (client >= 0) close(client);
    close(listener);
    fprintf(stderr, "cycles %llu tick_seconds %.6f tick_cpu_seconds %.6f\n",
            static_cast<unsigned long long>(cycles), tick_seconds, tick_cpu_seconds);
    top.final();
    return 0;
}
