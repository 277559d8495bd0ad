//! The process: single instance per port and data dir, memlock and CPU limits, many
//! connections.

use super::*;

// ---------------------------------------------------------------------------------------
// Process: single instance, memlock
// ---------------------------------------------------------------------------------------

#[test]
fn second_server_on_the_same_port_refuses_to_start() {
    let mut server = common::server(&[]);
    let options = ServerOptions { listen: format!("127.0.0.1:{}", server.port()), ..common::options() };
    let exited = Server::run_expecting_exit(options);
    assert!(!exited.status.success(), "exit {:?}", exited.status);
    assert!(exited.log.contains("already"), "log:\n{}", exited.log);
    assert!(server.is_running());
    assert_eq!(cluster_info(&mut server.client()), EMPTY_CLUSTER_INFO);
}

#[test]
fn second_server_on_the_same_data_dir_refuses_to_start() {
    let mut server = common::server(&[]);
    let options = ServerOptions { data_dir: Some(server.data_dir().to_path_buf()), ..common::options() };
    let exited = Server::run_expecting_exit(options);
    assert!(!exited.status.success(), "exit {:?}", exited.status);
    assert!(exited.log.contains(&server.data_dir().display().to_string()), "log:\n{}", exited.log);
    assert!(server.is_running());
    assert_eq!(cluster_info(&mut server.client()), EMPTY_CLUSTER_INFO);
}

/// Options that run the server as `nobody` (when the tests run as root, where the memlock
/// limit would not bind) under a memlock limit, from a copy of the binary and a data dir that
/// `nobody` can reach wherever the checkout is. Keep the returned dir alive for the run.
fn options_as_nobody(label: &str, memlock_bytes: u64) -> (meridian_testkit::TempDir, ServerOptions) {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let home = meridian_testkit::TempDir::new(label);
    let data = home.path().join("data");
    let mut binary = PathBuf::from(common::MERIDIAN_BIN);
    if root {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod home");
        std::fs::create_dir(&data).expect("create data dir");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).expect("chmod data dir");
        let copy = home.path().join("meridian");
        std::fs::copy(common::MERIDIAN_BIN, &copy).expect("copy the binary");
        binary = copy;
    }
    let options = ServerOptions {
        memlock_bytes: Some(memlock_bytes),
        run_as: root.then_some((65534, 65534)),
        binary,
        ..common::options()
    }
    .data_dir(&data);
    (home, options)
}

/// The limit binds only a process without CAP_IPC_LOCK: as root the tests drop to `nobody`.
/// With transparent huge pages on, each shard's registered io_uring buffer used to be
/// charged as whole 2 MiB pages per ring, and the second shard's registration failed.
#[test]
fn starts_as_a_normal_user_under_an_8_mib_memlock_limit_with_registered_buffers() {
    let (_home, options) = options_as_nobody("memlock-user", 8 * 1024 * 1024);
    let server = Server::start_with(options);
    let mut conn = server.client();
    assert_eq!(cluster_info(&mut conn), EMPTY_CLUSTER_INFO);
    let log = server.log_text();
    assert!(!log.contains("registering buffers"), "glommio could not register its buffers:\n{log}");
}

/// Below glommio's 512 KiB minimum no shard can build its rings; serving anyway would
/// accept connections nobody answers, so the server must refuse to start and say why.
#[test]
fn refuses_to_start_when_locked_memory_is_too_small_for_the_shards() {
    let (_home, options) = options_as_nobody("memlock-low", 256 * 1024);
    let exited = Server::run_expecting_exit(options);
    assert!(!exited.status.success(), "exit {:?}", exited.status);
    assert!(exited.log.contains("shards started"), "log:\n{}", exited.log);
    assert!(exited.log.contains("ulimit -l"), "log:\n{}", exited.log);
}

/// Shards are pinned within the process's affinity mask (taskset, cpusets), not to
/// absolute CPU numbers.
#[test]
fn shards_stay_on_the_cpus_the_process_may_use() {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpu = cpus - 1;
    let server = Server::start_with(ServerOptions { cpu: Some(cpu), ..common::options() }.shards(1));
    assert_eq!(cluster_info(&mut server.client()), EMPTY_CLUSTER_INFO);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", server.pid())).expect("list threads");
    let mut shards = 0;
    for task in tasks {
        let dir = task.expect("thread entry").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if !comm.starts_with("meridian-shard") {
            continue;
        }
        shards += 1;
        let status = std::fs::read_to_string(dir.join("status")).expect("thread status");
        let allowed = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(str::trim);
        assert_eq!(allowed, Some(cpu.to_string().as_str()), "thread {comm:?} of a process limited to CPU {cpu}");
    }
    assert!(shards > 0, "no shard thread found");
}

/// The process's THP switch as the kernel reports it (`THP_enabled:` in /proc/PID/status,
/// Linux 5.0+); `None` on a kernel that does not report it.
fn thp_enabled(pid: u32) -> Option<bool> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    status.lines().find_map(|l| l.strip_prefix("THP_enabled:")).map(|v| v.trim() == "1")
}

#[test]
fn transparent_huge_pages_stay_off_unless_configured() {
    let off = common::server(&[]);
    assert_eq!(cluster_info(&mut off.client()), EMPTY_CLUSTER_INFO);
    let Some(enabled) = thp_enabled(off.pid()) else { return };
    assert!(!enabled, "THP is off after the shards started, by default");
    let on = common::server(&["transparentHugePages=true"]);
    assert_eq!(cluster_info(&mut on.client()), EMPTY_CLUSTER_INFO);
    // Turned on by the main thread once the shards reported ready, so maybe just after
    // the first answer.
    let pid = on.pid();
    assert!(poll_until(POLL_DEADLINE, || thp_enabled(pid) == Some(true)), "transparentHugePages=true turns it on");
}

#[test]
fn starts_and_answers_under_an_8_mib_memlock_limit() {
    let server = Server::start_with(ServerOptions { memlock_bytes: Some(8 * 1024 * 1024), ..common::options() });
    let mut conn = server.client();
    assert_eq!(cluster_info(&mut conn), EMPTY_CLUSTER_INFO);
    let b = Broker::new("c1", "broker-a", 0, 10911);
    assert_registered(&mut conn, &b.register(json_body(1, &[topic("T1", 4, 6), topic("T2", 4, 6)])));
    assert_eq!(route_code(&mut server.client(), "T1"), 0);
}

/// Raises this test process's open-files limit so it can hold `needed` sockets (the server
/// inherits it and raises its own from there). As root the hard limit may be raised too.
fn ensure_open_files(needed: u64) {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
    if limit.rlim_cur >= needed {
        return;
    }
    let wanted = libc::rlimit { rlim_cur: needed, rlim_max: limit.rlim_max.max(needed) };
    // SAFETY: as above.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0;
    assert!(
        raised,
        "this test needs {needed} open files; the limit is {} (hard {}) and could not be raised: {}",
        limit.rlim_cur,
        limit.rlim_max,
        std::io::Error::last_os_error()
    );
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS line").to_string();
    line.split_whitespace().nth(1).expect("a number").parse::<u64>().expect("kB")
}

/// 10,000 connections open at once (over the two shards), each asking twice: every one is
/// answered, none is closed, and the server holds them all as open sockets.
#[test]
fn ten_thousand_concurrent_connections_are_all_served() {
    const CONNECTIONS: usize = 10_000;
    ensure_open_files(CONNECTIONS as u64 + 1024);
    let server = common::server(&[]);
    let b = Broker::new("c1", "broker-a", 0, 10911);
    // Held open: a closed broker connection unregisters the broker.
    let mut broker_conn = server.client();
    assert_registered(&mut broker_conn, &b.register(json_body(1, &[topic("T1", 8, 6), topic("T2", 8, 6)])));
    let rss_before = rss_kib(server.pid());
    let mut conns: Vec<Client> = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut conn = server.client();
        conn.send(&route_request("T1"));
        conns.push(conn);
    }
    for round in 0..2 {
        for (i, conn) in conns.iter_mut().enumerate() {
            let reply = conn.read_reply().unwrap_or_else(|e| panic!("round {round}: connection {i} unanswered: {e}"));
            assert_eq!(reply.code(), SUCCESS, "round {round}: connection {i}: {:?}", reply.remark());
            if round == 0 {
                conn.send(&route_request("T1"));
            }
        }
    }
    // Every connection is still open on the server side (plus listeners, rings, files).
    let fds = open_fds(server.pid());
    assert!(fds >= CONNECTIONS, "server holds {fds} fds for {CONNECTIONS} connections");
    let grew_kib = rss_kib(server.pid()).saturating_sub(rss_before);
    eprintln!("{CONNECTIONS} connections: server fds {fds}, RSS +{grew_kib} KiB");
    // A mostly idle connection must not hold a large read buffer (it held 64 KiB once).
    assert!(grew_kib < 32 * CONNECTIONS as u64, "RSS grew by {grew_kib} KiB for {CONNECTIONS} connections");
    assert!(!server.log_text().contains("closing"), "{}", server.log_text());
    drop(conns);
    assert_eq!(route_code(&mut server.client(), "T1"), SUCCESS);
}

/// 1,000 clients connect at the same moment and each sends one lookup: all are answered.
#[test]
fn a_burst_of_a_thousand_connections_is_answered_completely() {
    const CONNECTIONS: usize = 1_000;
    ensure_open_files(CONNECTIONS as u64 + 1024);
    let server = common::server(&[]);
    let b = Broker::new("c1", "broker-a", 0, 10911);
    // Held open: a closed broker connection unregisters the broker.
    let mut broker_conn = server.client();
    assert_registered(&mut broker_conn, &b.register(json_body(1, &[topic("T1", 8, 6), topic("T2", 8, 6)])));
    let addr = server.addr();
    let start = std::sync::Arc::new(std::sync::Barrier::new(CONNECTIONS));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let start = start.clone();
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    start.wait();
                    let mut conn = Client::connect(addr);
                    conn.call(&route_request("T1")).code()
                })
                .expect("spawn a client thread")
        })
        .collect();
    let codes: Vec<i32> = clients.into_iter().map(|c| c.join().expect("client thread")).collect();
    assert_eq!(codes.iter().filter(|&&c| c == SUCCESS).count(), CONNECTIONS, "{codes:?}");
    assert!(!server.log_text().contains("closing"), "{}", server.log_text());
}
