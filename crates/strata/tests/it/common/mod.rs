//! Running the `strata` binary as a developer does: `strata dev …` in the background, its
//! banner read up to "Press Ctrl-C", and a stop (SIGTERM, then SIGKILL) however the test ends.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `strata dev`.
pub struct DevProcess(Child);

impl DevProcess {
    /// Starts `strata dev ARGS` and returns it with the lines it printed before "Press Ctrl-C"
    /// (empty when it exited first).
    pub async fn start(args: &[String]) -> (DevProcess, Vec<String>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("dev")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("strata dev starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let dev = DevProcess(child);
        let lines = tokio::task::spawn_blocking(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .take_while(|l| !l.starts_with("Press Ctrl-C"))
                .collect()
        })
        .await
        .expect("reader joins");
        (dev, lines)
    }

    /// SIGTERM, then the exit status (None when it had to be killed after 30 s: a dev cluster
    /// of several brokers shuts each down in turn, which took over 15 s once on a loaded
    /// 2-core machine).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
        None
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.stop();
        }
    }
}
