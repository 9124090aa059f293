/* The workloads bench/init.sh runs under each init. Not a test: it measures.
 *
 *   helper sigecho            print "ready"; for each SIGUSR1, print CLOCK_MONOTONIC ns
 *   helper latency N INIT...  run `unshare --pid --fork --mount-proc INIT... helper sigecho`,
 *                             send the init N SIGUSR1s one at a time, print the
 *                             forwarding latency: "median_us p99_us"
 *   helper orphans N          (as the init's child, in its namespace) leave N orphans
 *                             that exit at one instant; print the ms until the init has
 *                             reaped them all (/proc holds only the init and us again)
 */
#define _GNU_SOURCE
#include <dirent.h>
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

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "sigecho")) return sigecho();
    if (argc >= 4 && !strcmp(argv[1], "latency")) {
        char self[4096];
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len < 0) return 2;
        self[len] = 0;
        return latency(atoi(argv[2]), argv + 3, self);
    }
    if (argc >= 3 && !strcmp(argv[1], "orphans")) return orphans(atoi(argv[2]));
    fprintf(stderr, "usage: helper sigecho | latency N INIT... | orphans N\n");
    return 64;
}
