use std::path::Path;

use super::*;
use crate::media::video::cpu_adaptation::LADDER;

fn mode(format: CameraFormat, width: u32, height: u32, fps: u32) -> CameraMode {
    CameraMode { format, width, height, rate: FrameRate::new(fps, 1).unwrap() }
}

use CameraFormat::{Mjpeg, Nv12, Yuyv};

/// A typical USB 2 webcam: uncompressed only small or slow, MJPEG large at full rate.
fn webcam() -> Vec<CameraMode> {
    vec![
        mode(Yuyv, 640, 480, 30),
        mode(Yuyv, 640, 480, 15),
        mode(Yuyv, 1280, 720, 10),
        mode(Yuyv, 320, 240, 30),
        mode(Mjpeg, 1920, 1080, 30),
        mode(Mjpeg, 1280, 720, 30),
        mode(Mjpeg, 640, 480, 30),
        mode(Mjpeg, 640, 480, 60),
    ]
}

#[test]
fn the_mode_covers_the_ladders_size_at_its_rate_uncompressed_when_that_fits() {
    // 640x360@30: YUYV 640x480@30 covers it at full rate, no decoding.
    assert_eq!(choose_mode(&webcam(), LADDER[0]), Some(mode(Yuyv, 640, 480, 30)));
    // The smaller rungs: the smallest covering size.
    assert_eq!(choose_mode(&webcam(), LADDER[2]), Some(mode(Yuyv, 320, 240, 30)));
    // A 720p target: YUYV 720p only gives 10 fps, MJPEG gives 30: the rate wins over raw.
    let hd = VideoFormat { width: 1280, height: 720, fps: 30 };
    assert_eq!(choose_mode(&webcam(), hd), Some(mode(Mjpeg, 1280, 720, 30)));
    // 15 fps asked: the 15 fps mode, not a faster one.
    let slow = VideoFormat { width: 640, height: 360, fps: 15 };
    assert_eq!(choose_mode(&webcam(), slow), Some(mode(Yuyv, 640, 480, 15)));
    // NV12 over YUYV over MJPEG at the same size and rate.
    let same = [mode(Mjpeg, 640, 480, 30), mode(Yuyv, 640, 480, 30), mode(Nv12, 640, 480, 30)];
    assert_eq!(choose_mode(&same, LADDER[0]), Some(mode(Nv12, 640, 480, 30)));
    // Never above 30 fps when 30 is there; a 60 fps-only camera is still taken.
    let fast = [mode(Mjpeg, 640, 480, 60), mode(Mjpeg, 640, 480, 30)];
    assert_eq!(choose_mode(&fast, LADDER[0]), Some(mode(Mjpeg, 640, 480, 30)));
    assert_eq!(choose_mode(&fast[..1], LADDER[0]), Some(mode(Mjpeg, 640, 480, 60)));
    // A camera smaller than the target: its largest size.
    let tiny = [mode(Yuyv, 160, 120, 30), mode(Yuyv, 320, 240, 30)];
    assert_eq!(choose_mode(&tiny, LADDER[0]), Some(mode(Yuyv, 320, 240, 30)));
    // 29.97 counts as 30.
    let ntsc = [
        mode(Yuyv, 640, 480, 15),
        CameraMode { rate: FrameRate::new(30000, 1001).unwrap(), ..mode(Yuyv, 640, 480, 1) },
    ];
    assert_eq!(choose_mode(&ntsc, LADDER[0]), Some(ntsc[1]));
    assert_eq!(choose_mode(&[], LADDER[0]), None);
}

#[test]
fn modes_are_listed_one_line_per_format_and_size() {
    let mut modes = webcam();
    modes.push(CameraMode { rate: FrameRate::new(30000, 1001).unwrap(), ..mode(Nv12, 640, 480, 1) });
    let info = CameraInfo { name: "cam".into(), path: "/dev/video0".into(), modes, problem: None };
    assert_eq!(
        info.mode_lines(),
        vec![
            "YUYV 640x480 @ 30, 15 fps",
            "YUYV 1280x720 @ 10 fps",
            "YUYV 320x240 @ 30 fps",
            "MJPEG 1920x1080 @ 30 fps",
            "MJPEG 1280x720 @ 30 fps",
            "MJPEG 640x480 @ 30, 60 fps",
            "NV12 640x480 @ 29.97 fps",
        ]
    );
}

#[test]
fn a_drivers_size_and_rate_ranges_become_the_sizes_and_rates_offered() {
    use v4l2::Range;
    assert_eq!(sizes_in(Range::Discrete((640, 480))), vec![(640, 480)]);
    // A range from 160x120 to 1280x720: the ladder's sizes, the usual ones inside, and the largest.
    let sizes = sizes_in(Range::Stepwise { min: (160, 120), max: (1280, 720) });
    assert_eq!(sizes, vec![(640, 360), (480, 270), (320, 180), (640, 480), (1280, 720), (320, 240)]);
    assert_eq!(
        sizes_in(Range::Stepwise { min: (100, 100), max: (200, 150) }),
        vec![(200, 150)],
        "only the largest fits"
    );
    // Intervals are seconds per frame: 1/30 s is 30 fps, 1001/30000 s is 29.97.
    assert_eq!(rates_in(Range::Discrete((1, 30))), vec![FrameRate::new(30, 1).unwrap()]);
    assert_eq!(rates_in(Range::Discrete((1001, 30000))), vec![FrameRate::new(30000, 1001).unwrap()]);
    // A range from 1/60 s to 1 s: 60 fps, and 30 and 15 inside it.
    let rates = rates_in(Range::Stepwise { min: (1, 60), max: (1, 1) });
    let fps: Vec<u32> = rates.iter().map(|r| r.ceil_fps()).collect();
    assert_eq!(fps, vec![60, 30, 15]);
    let fps: Vec<u32> = rates_in(Range::Stepwise { min: (1, 20), max: (1, 10) }).iter().map(|r| r.ceil_fps()).collect();
    assert_eq!(fps, vec![20, 15], "15 lies inside, 30 does not");
    // A broken driver's zero intervals give nothing (and never divide by zero).
    assert_eq!(rates_in(Range::Discrete((0, 30))), vec![]);
    assert_eq!(rates_in(Range::Discrete((1, 0))), vec![]);
    assert_eq!(rates_in(Range::Stepwise { min: (0, 0), max: (0, 0) }), vec![]);
}

#[test]
fn capture_times_come_from_the_cameras_stamps_unless_they_cannot_be_trusted() {
    let unix = 1_700_000_000_000_000;
    // Stamped 40 ms before now on the monotonic clock: captured 40 ms before now.
    assert_eq!(capture_time_us(9_960_000, 10_000_000, unix), unix - 40_000);
    // No stamp, a stamp from the future, a stamp from another clock: now.
    assert_eq!(capture_time_us(0, 10_000_000, unix), unix);
    assert_eq!(capture_time_us(10_000_001, 10_000_000, unix), unix);
    assert_eq!(capture_time_us(1_000, 10_000_000 + STALE_STAMP_US, unix), unix);
    assert_eq!(capture_time_us(i64::MIN, i64::MAX, unix), unix, "no overflow");
}

#[test]
fn formats_round_trip_through_their_fourcc() {
    for f in [Yuyv, Nv12, Mjpeg] {
        assert_eq!(CameraFormat::from_fourcc(f.fourcc()), Some(f));
    }
    assert_eq!(CameraFormat::from_fourcc(u32::from_le_bytes(*b"JPEG")), Some(Mjpeg));
    assert_eq!(CameraFormat::from_fourcc(u32::from_le_bytes(*b"H264")), None);
    assert_eq!(Yuyv.fourcc(), 0x5659_5559, "videodev2.h's V4L2_PIX_FMT_YUYV");
    let json = serde_json::to_value(mode(Mjpeg, 1280, 720, 30)).unwrap();
    assert_eq!(json, serde_json::json!({ "format": "MJPEG", "width": 1280, "height": 720, "fps": 30.0 }));
}

/// A fake machine: `/sys/class/video4linux/videoN/name` for each `(node, name)`, and `/dev/videoN`
/// as a plain file (not a device) for each.
fn fake_root(nodes: &[(&str, &str)]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("dev")).unwrap();
    for (node, name) in nodes {
        let dir = root.path().join("sys/class/video4linux").join(node);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(root.path().join("dev").join(node), b"").unwrap();
    }
    root
}

#[test]
fn cameras_are_listed_from_sysfs_in_device_order_and_a_plain_file_is_no_device() {
    let fake = fake_root(&[("video10", "USB Camera B"), ("video2", "Integrated Webcam"), ("vbi0", "not video")]);
    let root = fake.path();
    let listed = list_cameras(root);
    let names: Vec<(&str, &Path)> = listed.iter().map(|c| (c.name.as_str(), c.path.as_path())).collect();
    assert_eq!(
        names,
        vec![
            ("Integrated Webcam", root.join("dev/video2").as_path()),
            ("USB Camera B", root.join("dev/video10").as_path())
        ],
        "video2 before video10, vbi0 left out"
    );
    for c in &listed {
        let problem = c.problem.as_deref().unwrap();
        assert!(problem.starts_with("not a V4L2 video device"), "{problem}");
        assert!(c.modes.is_empty());
    }
    let json = serde_json::to_value(&listed).unwrap();
    assert_eq!(json[0]["name"], "Integrated Webcam");
    assert!(json[0]["problem"].as_str().unwrap().contains("not a V4L2"));

    // Picking one: by part of its name, by node, by path; the reason it cannot be used.
    for wanted in ["webcam", "video2", "/dev/video2"] {
        match find_camera(root, Some(wanted)) {
            Err(CameraError::Device { path, why }) => {
                assert_eq!(path, root.join("dev/video2"), "{wanted}");
                assert!(why.contains("not a V4L2"), "{why}");
            }
            other => panic!("{wanted}: {other:?}"),
        }
    }
    assert!(
        matches!(find_camera(root, Some("usb camera b")), Err(CameraError::Device { path, .. }) if path.ends_with("video10"))
    );
    assert_eq!(find_camera(root, Some("nikon")), Err(CameraError::NoMatch { wanted: "nikon".into() }));
    assert!(matches!(find_camera(root, None), Err(CameraError::Device { path, .. }) if path.ends_with("video2")));

    // Opening one to stream: the same clear error, no panic.
    let err = CameraSource::open(root, Some("webcam"), LADDER[0]).unwrap_err();
    assert!(err.to_string().contains("not a V4L2 video device"), "{err}");

    // A node listed in sysfs whose device node is missing: listed, with why.
    std::fs::remove_file(root.join("dev/video10")).unwrap();
    let gone = list_cameras(root).pop().unwrap();
    assert!(gone.problem.unwrap().starts_with("cannot open it"), "missing node");
}

#[test]
fn a_machine_without_cameras_says_so() {
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(list_cameras(empty.path()), vec![]);
    assert_eq!(find_camera(empty.path(), None), Err(CameraError::NoCamera));
    assert_eq!(find_camera(empty.path(), Some("webcam")), Err(CameraError::NoCamera));
    let err = CameraSource::open(empty.path(), None, LADDER[0]).unwrap_err();
    assert_eq!(err, CameraError::NoCamera);
    assert!(err.to_string().contains("no camera found"), "{err}");
    // An empty class directory is no camera either.
    std::fs::create_dir_all(empty.path().join("sys/class/video4linux")).unwrap();
    assert_eq!(find_camera(empty.path(), None), Err(CameraError::NoCamera));
}

#[test]
fn a_padded_or_short_driver_buffer_converts_or_fails_cleanly() {
    use crate::media::video::pattern::{self, Stamp};
    let p = pattern::draw(64, 36, Stamp { counter: 5, capture_ms: 0 }).unwrap();
    // The same YUYV picture, packed and with 16 bytes of padding after every row.
    let mut yuyv = Vec::new();
    for row in 0..36 {
        for x in (0..64).step_by(2) {
            let c = (row / 2) * 32 + x / 2;
            yuyv.extend([p.y[row * 64 + x], p.u[c], p.y[row * 64 + x + 1], p.v[c]]);
        }
    }
    let packed = CameraFormat::Yuyv.buffer_to_i420(&yuyv, 128, 64, 36).unwrap();
    let padded_bytes: Vec<u8> = yuyv.chunks(128).flat_map(|r| r.iter().copied().chain([0xAA; 16])).collect();
    let padded = CameraFormat::Yuyv.buffer_to_i420(&padded_bytes, 144, 64, 36).unwrap();
    assert_eq!((padded.y.as_slice(), padded.u.as_slice()), (packed.y.as_slice(), packed.u.as_slice()), "padding is dropped");
    assert_eq!(packed.y, p.y, "luma exact");
    // NV12 with padded rows: luma rows and the interleaved chroma rows both repacked.
    let mut nv12: Vec<u8> = p.y.chunks(64).flat_map(|r| r.iter().copied().chain([0; 8])).collect();
    for crow in 0..18 {
        let row: Vec<u8> = (0..32).flat_map(|c| [p.u[crow * 32 + c], p.v[crow * 32 + c]]).collect();
        nv12.extend(row.into_iter().chain([0; 8]));
    }
    let f = CameraFormat::Nv12.buffer_to_i420(&nv12, 72, 64, 36).unwrap();
    assert_eq!((f.y.as_slice(), f.u.as_slice(), f.v.as_slice()), (p.y.as_slice(), p.u.as_slice(), p.v.as_slice()));
    // Short buffers (a driver that filled less than a frame): errors, packed or padded.
    for format in [CameraFormat::Yuyv, CameraFormat::Nv12, CameraFormat::Mjpeg] {
        for stride in [0, 64, 144] {
            assert!(format.buffer_to_i420(&padded_bytes[..100], stride, 64, 36).is_err(), "{format:?} stride {stride}");
        }
    }
}
