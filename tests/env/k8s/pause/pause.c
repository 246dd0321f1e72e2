/* The pod sandbox ("pause") container of the test nodes: holds the pod's namespaces, reaps
 * orphaned children when it is PID 1 of a shared PID namespace, and exits 0 on SIGINT/SIGTERM.
 * Built statically (tests/env/install/k8s-nodes.sh) into a FROM scratch image, so the nodes
 * never pull registry.k8s.io/pause. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(int argc, char **argv) {
  (void)argv;
  if (argc > 1) {
    return 0; /* `pause --version` and friends: nothing to say, nothing to do */
  }
  struct sigaction on_stop = {.sa_handler = stop};
  struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &on_stop, NULL) < 0 || sigaction(SIGTERM, &on_stop, NULL) < 0 ||
      sigaction(SIGCHLD, &on_child, NULL) < 0) {
    return 1;
  }
  for (;;) {
    pause();
  }
}
