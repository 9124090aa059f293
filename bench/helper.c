/* The workloads bench/init.sh runs under each init. Not a test: it measures.
 *
 *   helper sigecho            print "ready"; for each SIGUSR1, print CLOCK_MONOTONIC ns
 *   helper latency N INIT...  run `unshare --pid --fork --mount-proc INIT... helper sigecho`,
 *                             send the init N SIGUSR1s one at a time, print the
 *                             forwarding latency: "median_us p99_us"
 *   helper orphans N          (as the init's child, in its namespace) leave N orphans
 *                             that exit at one instant; print the ms until the init has
 *                             reaped them all (/proc holds only the init and us again)
 *
 * and the processes bench/supervise.sh gives each supervisor:
 *   helper up FIFO            write one byte to FIFO ("I run"), then sleep until a signal
 *                             ends it (SIGTERM's default action: it stops at once)
 *   run                       the same, as s6's `./run` (a symlink to the helper, so
 *                             that no shell runs in between); FIFO from $BENCH_FIFO
 *   helper spew BYTES         write BYTES of 100-byte lines to stdout, then sleep
 *   helper count LINES FILE   read stdin to its end; once LINES lines have come, write
 *                             the CLOCK_MONOTONIC ns to FILE
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int sigecho(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("ready\n");
    for (;;) {
        int sig = sigwaitinfo(&set, NULL);
        if (sig == SIGTERM) return 0;
        if (sig == SIGUSR1) printf("%lld\n", now_ns());
    }
}

static pid_t child_of(pid_t parent) {
    for (int tries = 0; tries < 5000; tries++) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while ((e = readdir(d))) {
            char path[64], buf[512];
            int pid = atoi(e->d_name);
            if (pid <= 0) continue;
            snprintf(path, sizeof path, "/proc/%d/stat", pid);
            FILE *f = fopen(path, "r");
            if (!f) continue;
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = 0;
            char *close = strrchr(buf, ')');
            int ppid = 0;
            if (close && sscanf(close + 2, "%*c %d", &ppid) == 1 && ppid == parent) {
                closedir(d);
                return pid;
            }
        }
        closedir(d);
        usleep(1000);
    }
    return -1;
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static int latency(int n, char **init, const char *self) {
    int out[2];
    if (pipe(out)) return 2;
    pid_t unshare = fork();
    if (unshare == 0) {
        char *argv[32];
        int a = 0;
        argv[a++] = "unshare";
        argv[a++] = "--pid";
        argv[a++] = "--fork";
        argv[a++] = "--mount-proc";
        argv[a++] = "--kill-child";
        for (int i = 0; init[i] && a < 26; i++) argv[a++] = init[i];
        argv[a++] = (char *)self;
        argv[a++] = "sigecho";
        argv[a] = NULL;
        dup2(out[1], 1);
        close(out[0]);
        execvp("unshare", argv);
        _exit(127);
    }
    close(out[1]);
    FILE *in = fdopen(out[0], "r");
    char line[64];
    if (!fgets(line, sizeof line, in)) return 3;
    pid_t initpid = child_of(unshare);
    long long *lat = calloc((size_t)n, sizeof *lat);
    for (int i = 0; i < n; i++) {
        long long t0 = now_ns();
        kill(initpid, SIGUSR1);
        if (!fgets(line, sizeof line, in)) return 4;
        lat[i] = atoll(line) - t0;
    }
    kill(initpid, SIGKILL);
    waitpid(unshare, NULL, 0);
    qsort(lat, (size_t)n, sizeof *lat, cmp);
    printf("%.1f %.1f\n", lat[n / 2] / 1000.0, lat[(n * 99) / 100] / 1000.0);
    return 0;
}

static int count_procs(void) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d)))
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9') n++;
    closedir(d);
    return n;
}

static int orphans(int n) {
    int gate[2];
    if (pipe(gate)) return 2;
    for (int i = 0; i < n; i++) {
        pid_t mid = fork();
        if (mid == 0) {
            if (fork() == 0) {
                char c;
                close(gate[1]);
                (void)!read(gate[0], &c, 1);
                _exit(0);
            }
            _exit(0);
        }
        waitpid(mid, NULL, 0);
    }
    long long t0 = now_ns();
    close(gate[1]);
    while (count_procs() > 2) usleep(200);
    printf("%.1f\n", (now_ns() - t0) / 1e6);
    return 0;
}

static int up(const char *fifo) {
    int fd = fifo ? open(fifo, O_WRONLY | O_CLOEXEC) : -1;
    if (fd < 0 || write(fd, "u", 1) != 1) return 2;
    close(fd);
    for (;;) pause();
}

static int spew(long long bytes) {
    static char block[655 * 100];
    for (size_t i = 0; i < sizeof block; i++) block[i] = (i % 100 == 99) ? '\n' : 'a' + (char)(i % 26);
    while (bytes > 0) {
        size_t n = bytes < (long long)sizeof block ? (size_t)bytes : sizeof block;
        ssize_t w = write(1, block, n);
        if (w <= 0) return 2;
        bytes -= w;
    }
    for (;;) pause();
}

static int count(long long lines, const char *file) {
    static char buf[1 << 20];
    long long seen = 0;
    int told = 0;
    for (;;) {
        ssize_t n = read(0, buf, sizeof buf);
        if (n <= 0) return told ? 0 : 3;
        for (char *p = buf; (p = memchr(p, '\n', (size_t)(buf + n - p))); p++) seen++;
        if (!told && seen >= lines) {
            FILE *f = fopen(file, "w");
            if (!f) return 2;
            fprintf(f, "%lld\n", now_ns());
            fclose(f);
            told = 1;
        }
    }
}

int main(int argc, char **argv) {
    const char *base = strrchr(argv[0], '/');
    if (!strcmp(base ? base + 1 : argv[0], "run")) return up(getenv("BENCH_FIFO"));
    if (argc >= 3 && !strcmp(argv[1], "up")) return up(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "spew")) return spew(atoll(argv[2]));
    if (argc >= 4 && !strcmp(argv[1], "count")) return count(atoll(argv[2]), argv[3]);
    if (argc >= 2 && !strcmp(argv[1], "sigecho")) return sigecho();
    if (argc >= 4 && !strcmp(argv[1], "latency")) {
        char self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len < 0) return 2;
        self[len] = 0;
        return latency(atoi(argv[2]), argv + 3, self);
    }
    if (argc >= 3 && !strcmp(argv[1], "orphans")) return orphans(atoi(argv[2]));
    fprintf(stderr, "usage: helper sigecho | latency N INIT... | orphans N | up FIFO | spew BYTES | count LINES FILE\n");
    return 64;
}
