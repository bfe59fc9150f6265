/* How long a thread takes to start running after its spawner has been idle, and on which CPU:
 * the measurement behind tessera_openjpeg's `placement` module (see bench/thread_start.sh).
 *
 *   thread_start PAUSE_MS [TRIALS]
 *
 * Each trial sleeps PAUSE_MS (as a server between requests), then starts a thread while the
 * spawner keeps its own CPU busy for 3 ms (as a decode's first thread does), and records how
 * long the new thread took to run and whether it ran on the spawner's CPU. Three ways:
 *   spawned  - pthread_create, placed wherever Linux puts it;
 *   parked   - a thread started once, woken through a condition variable (a pool);
 *   elsewhere - pthread_create, then pthread_setaffinity_np to every allowed CPU but the
 *              spawner's, the thread giving itself every CPU back once it runs (Tessera's way).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void busy(double us) {
  double start = now_us();
  while (now_us() - start < us) {
  }
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static cpu_set_t allowed;
struct start { volatile double at; volatile int cpu; int free_itself; };

static void *run(void *arg) {
  struct start *s = arg;
  s->at = now_us();
  s->cpu = sched_getcpu();
  if (s->free_itself) sched_setaffinity(0, sizeof allowed, &allowed);
  return NULL;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static int generation;

static void *parked(void *arg) {
  int seen = 0;
  for (;;) {
    pthread_mutex_lock(&lock);
    while (generation == seen) pthread_cond_wait(&wake, &lock);
    seen = generation;
    pthread_mutex_unlock(&lock);
    run(arg);
  }
  return NULL;
}

static void report(const char *way, double *delays, int trials, int same_cpu) {
  qsort(delays, trials, sizeof *delays, by_value);
  printf("| %s | %.0f | %.0f | %.0f | %d of %d |\n", way, delays[trials / 2],
         delays[trials * 9 / 10], delays[trials - 1], same_cpu, trials);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: thread_start PAUSE_MS [TRIALS]\n");
    return 2;
  }
  int pause_ms = atoi(argv[1]), trials = argc > 2 ? atoi(argv[2]) : 100;
  if (trials < 1 || trials > 10000) trials = 100;
  double *delays = calloc(trials, sizeof *delays);
  sched_getaffinity(0, sizeof allowed, &allowed);
  struct start s = {0};
  printf("| way | median µs | p90 µs | max µs | on the spawner's CPU |\n|---|---:|---:|---:|---:|\n");

  int same = 0;
  for (int i = 0; i < trials; i++) {
    usleep(pause_ms * 1000);
    double t = now_us();
    pthread_t th;
    pthread_create(&th, NULL, run, &s);
    int here = sched_getcpu();
    busy(3000);
    pthread_join(th, NULL);
    delays[i] = s.at - t;
    same += s.cpu == here;
  }
  report("spawned", delays, trials, same);

  same = 0;
  pthread_t pool;
  pthread_create(&pool, NULL, parked, &s);
  usleep(10000);
  for (int i = 0; i < trials; i++) {
    usleep(pause_ms * 1000);
    s.at = 0;
    double t = now_us();
    int here = sched_getcpu();
    pthread_mutex_lock(&lock);
    generation++;
    pthread_cond_signal(&wake);
    pthread_mutex_unlock(&lock);
    busy(3000);
    while (s.at == 0) usleep(100); /* not run within the 3 ms: wait, and count from t */
    delays[i] = s.at - t;
    same += s.cpu == here;
  }
  report("parked", delays, trials, same);

  same = 0;
  s.free_itself = 1;
  for (int i = 0; i < trials; i++) {
    usleep(pause_ms * 1000);
    double t = now_us();
    int here = sched_getcpu();
    cpu_set_t elsewhere = allowed;
    CPU_CLR(here, &elsewhere);
    pthread_t th;
    pthread_create(&th, NULL, run, &s);
    if (CPU_COUNT(&elsewhere) > 0) pthread_setaffinity_np(th, sizeof elsewhere, &elsewhere);
    busy(3000);
    pthread_join(th, NULL);
    delays[i] = s.at - t;
    same += s.cpu == here;
  }
  report("elsewhere", delays, trials, same);
  return 0;
}
