/* probe: the child program launch's tests run under launch.
 *
 * Each mode does one thing a real workload does, and reports on stdout, one line at a
 * time, unbuffered, so the test can follow along:
 *
 *   probe signals N [group]  wait for signals; print "<role> SIGNAME" per signal; exit 0
 *                            after N. With "group", a grandchild in the same process
 *                            group does the same with role "grandchild".
 *   probe exit CODE          exit with CODE
 *   probe killself SIG       die of signal SIG
 *   probe orphans N          double-fork N orphans that exit at the same instant; print
 *                            "released"; then wait for SIGTERM and exit 0
 *   probe stubborn           leave a grandchild that ignores SIGTERM; print its pid; exit 0
 *   probe burst N            fork N children that exit at the same instant as the probe
 *   probe status             print SigBlk, SigIgn and the open fds >= 3
 *   probe sleep              print "ready" and sleep until killed
 *   probe serve FILE         read "port=N" from FILE, listen on 127.0.0.1:N (exit 1 when
 *                            the port cannot be had) and answer each connection with
 *                            "hello from N", until killed
 *   probe TAG ...            any mode accepts a leading "tag=..." argument, ignored, so
 *                            tests can find their processes in /proc
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) (void)!write(1, buf, (size_t)n);
}

static const int WATCHED[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2,
                              SIGWINCH, SIGCONT, SIGALRM, SIGPIPE};

static int watch_signals(const char *role, int count) {
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof WATCHED / sizeof WATCHED[0]; i++) sigaddset(&set, WATCHED[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    say("%s ready\n", role);
    for (int got = 0; got < count;) {
        siginfo_t info;
        int sig = sigwaitinfo(&set, &info);
        if (sig < 0) continue;
        say("%s SIG%s\n", role, sigabbrev_np(sig));
        got++;
    }
    return 0;
}

static int orphans(int n) {
    /* Blocked before anything is printed: the test sends TERM once it has seen the
       orphans reaped, and an unblocked TERM in between would kill the probe (143). */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, NULL);
    int release[2];
    if (pipe(release)) return 2;
    for (int i = 0; i < n; i++) {
        pid_t mid = fork();
        if (mid == 0) {
            if (fork() == 0) {
                char c;
                close(release[1]);
                (void)!read(release[0], &c, 1); /* EOF when the probe lets go */
                _exit(0);
            }
            _exit(0);
        }
        if (mid < 0) return 3;
        waitpid(mid, NULL, 0);
    }
    close(release[1]);
    say("released\n");
    int sig;
    sigwait(&term, &sig);
    return 0;
}

static int stubborn(void) {
    /* Ignored before the fork, so the grandchild ignores TERM from its first instant. */
    signal(SIGTERM, SIG_IGN);
    pid_t pid = fork();
    if (pid == 0) {
        for (;;) pause();
    }
    say("stubborn %d\n", pid);
    return 0;
}

static int burst(int n) {
    int gate[2];
    if (pipe(gate)) return 2;
    for (int i = 0; i < n; i++) {
        if (fork() == 0) {
            char c;
            close(gate[1]);
            (void)!read(gate[0], &c, 1);
            _exit(0);
        }
    }
    say("burst %d\n", n);
    _exit(0); /* closes the gate: every child sees EOF as the probe dies */
}

static int status(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "SigBlk:", 7) || !strncmp(line, "SigIgn:", 7)) say("%s", line);
    if (f) fclose(f);
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd >= 3 && fd != dirfd(d)) say("fd %d\n", fd);
    }
    if (d) closedir(d);
    char cwd[4096];
    if (getcwd(cwd, sizeof cwd)) say("cwd %s\n", cwd);
    say("pgid-is-pid %d\n", getpgrp() == getpid());
    return 0;
}

static int serve(const char *config) {
    FILE *f = fopen(config, "r");
    char line[256];
    int port = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "port=", 5)) port = atoi(line + 5);
    if (f) fclose(f);
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "serve: no port=N in %s\n", config);
        return 2;
    }
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(s, (struct sockaddr *)&at, sizeof at) || listen(s, 64)) {
        fprintf(stderr, "serve: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
        return 1;
    }
    say("serving %d\n", port);
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        char hello[64];
        int n = snprintf(hello, sizeof hello, "hello from %d\n", port);
        (void)!write(c, hello, (size_t)n);
        close(c);
    }
}

int main(int argc, char **argv) {
    int a = 1;
    if (a < argc && !strncmp(argv[a], "tag=", 4)) a++;
    if (a >= argc) return 64;
    const char *mode = argv[a];
    int n = a + 1 < argc ? atoi(argv[a + 1]) : 0;
    if (!strcmp(mode, "signals")) {
        if (a + 2 < argc && !strcmp(argv[a + 2], "group")) {
            pid_t kid = fork();
            if (kid == 0) return watch_signals("grandchild", n);
            int rc = watch_signals("main", n);
            waitpid(kid, NULL, 0);
            return rc;
        }
        return watch_signals("main", n);
    }
    if (!strcmp(mode, "exit")) return n;
    if (!strcmp(mode, "killself")) {
        signal(n, SIG_DFL);
        kill(getpid(), n);
        return 99;
    }
    if (!strcmp(mode, "orphans")) return orphans(n);
    if (!strcmp(mode, "stubborn")) return stubborn();
    if (!strcmp(mode, "burst")) return burst(n);
    if (!strcmp(mode, "status")) return status();
    if (!strcmp(mode, "serve") && a + 1 < argc) return serve(argv[a + 1]);
    if (!strcmp(mode, "sleep")) {
        say("ready\n");
        for (;;) pause();
    }
    return 64;
}
