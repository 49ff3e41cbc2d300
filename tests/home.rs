//! The node's home folder on disk: it must be ours, and private. Through the library and through
//! the real `hail daemon`.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{TestDaemon, temp_home};
use hail::home::{Home, HomeError};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Hands `path` to the `nobody` user (65534). Only root can: elsewhere the test says so and stops.
fn give_away(path: &Path) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("not root: cannot hand a folder to another user; skipping");
        return false;
    }
    std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
    true
}

#[test]
fn a_new_home_and_its_database_folder_are_private() {
    let (_dir, home) = temp_home();
    Home::new(&home).create().unwrap();
    assert_eq!(mode(&home), 0o700);
    assert_eq!(mode(&home.join("db")), 0o700);
}

#[test]
fn a_home_others_may_write_to_loses_that_permission_and_an_open_database_folder_is_closed() {
    for (loose, fixed) in [(0o777, 0o755), (0o770, 0o750), (0o702, 0o700), (0o755, 0o755)] {
        let (_dir, home) = temp_home();
        std::fs::create_dir(&home).unwrap();
        std::fs::create_dir(home.join("db")).unwrap();
        chmod(&home, loose);
        chmod(&home.join("db"), 0o755);
        Home::new(&home).create().unwrap();
        assert_eq!(mode(&home), fixed, "home was {loose:o}");
        assert_eq!(mode(&home.join("db")), 0o700, "db/ was 755");
    }
}

#[test]
fn a_home_owned_by_another_user_is_refused() {
    let (_dir, home) = temp_home();
    std::fs::create_dir(&home).unwrap();
    if !give_away(&home) {
        return;
    }
    match Home::new(&home).create() {
        Err(HomeError::NotOwned { owner: 65534, uid: 0, .. }) => {}
        other => panic!("expected NotOwned, got {other:?}"),
    }
    assert!(!home.join("db").exists(), "nothing was created in it");
}

#[test]
fn a_database_folder_owned_by_another_user_is_refused() {
    let (_dir, home) = temp_home();
    std::fs::create_dir_all(home.join("db")).unwrap();
    if !give_away(&home.join("db")) {
        return;
    }
    assert!(matches!(Home::new(&home).create(), Err(HomeError::NotOwned { owner: 65534, .. })));
}

#[test]
fn the_daemon_refuses_a_home_of_another_user_and_fixes_a_loose_one_with_a_warning() {
    let (dir, home) = temp_home();
    std::fs::create_dir(&home).unwrap();
    chmod(&home, 0o777);
    let daemon = TestDaemon::start(&home);
    assert_eq!(mode(&home), 0o755);
    assert_eq!(mode(&home.join("db")), 0o700);
    let log = daemon.log_text();
    assert!(log.contains("WARN") && log.contains("access is removed"), "{log}");
    drop(daemon);

    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    if !give_away(&theirs) {
        return;
    }
    match TestDaemon::try_start(&theirs, &[]) {
        Err(log) => assert!(
            log.contains("exit status: 4") && log.contains("belongs to another user") && log.contains("65534"),
            "{log}"
        ),
        Ok(_) => panic!("a daemon started on a home that belongs to another user"),
    }
    assert!(!theirs.join("identity.key").exists() && !theirs.join("db").exists(), "nothing was written in it");
}
