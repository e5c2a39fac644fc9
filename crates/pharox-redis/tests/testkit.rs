//! The test server itself: it keeps a log, and a failing test keeps that
//! log (and prints its tail) instead of removing it with the server.

use pharox_redis::testkit::RedisServer;

#[test]
fn server_logs_to_a_file_it_removes_when_the_test_passes() {
    let server = RedisServer::start();
    let log = server.log_path();
    assert!(
        server.log_tail(50).contains("Ready to accept connections"),
        "the log at {} lacks the startup line:\n{}",
        log.display(),
        server.log_tail(50)
    );
    drop(server);
    assert!(!log.exists(), "{} outlived a passing test", log.display());
}

#[test]
fn a_failing_test_keeps_the_server_log() {
    let (tx, rx) = std::sync::mpsc::channel();
    let failing = std::thread::spawn(move || {
        let server = RedisServer::start();
        tx.send(server.log_path()).expect("send the log path");
        panic!("a deliberately failing test");
    });
    assert!(failing.join().is_err(), "the thread should have panicked");
    let log = rx.recv().expect("the log path");
    let kept = std::fs::read_to_string(&log).expect("the log is kept after a failure");
    assert!(kept.contains("Ready to accept connections"), "{kept}");
    if let Some(dir) = log.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
