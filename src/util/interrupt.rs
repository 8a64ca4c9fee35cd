//! The one interrupt flag: set by the binary's signal handler, read by every long loop, and
//! watched on behalf of SQLite so that its own long statements stop too.

/// Set by the binary's signal handler; the engine stops at the next page and removes its
/// partial output.
pub static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the user asked to stop.
pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Interrupts SQLite's work on the output (a long `CREATE INDEX` or `integrity_check`) once
/// [`INTERRUPTED`] is set, so a signal is answered within a fraction of a second.
pub(crate) struct InterruptWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InterruptWatch {
    pub(crate) fn start(handle: rusqlite::InterruptHandle) -> InterruptWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = stop.clone();
        let thread = std::thread::Builder::new()
            .name("interrupt-watch".into())
            .spawn(move || {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if interrupted() {
                        handle.interrupt();
                        return;
                    }
                    // Woken early when the run ends, so it never waits out the 50 ms.
                    std::thread::park_timeout(std::time::Duration::from_millis(50));
                }
            })
            .ok();
        InterruptWatch { stop, thread }
    }
}

impl Drop for InterruptWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
