//! The few V4L2 calls a camera needs, by hand over libc: query the device, list its formats,
//! sizes and rates, set a mode, map buffers and stream. The structures are the kernel's
//! (`linux/videodev2.h`), laid out as on 64-bit Linux (checked at compile time); every call that
//! fails is an [`std::io::Error`], never a panic.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `V4L2_BUF_TYPE_VIDEO_CAPTURE`.
const BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
/// `V4L2_MEMORY_MMAP`.
const MEMORY_MMAP: u32 = 1;
/// `V4L2_CAP_VIDEO_CAPTURE`.
const CAP_VIDEO_CAPTURE: u32 = 0x1;
/// `V4L2_CAP_STREAMING`.
const CAP_STREAMING: u32 = 0x0400_0000;
/// `V4L2_CAP_DEVICE_CAPS`: `device_caps` says what this node (not the whole device) does.
const CAP_DEVICE_CAPS: u32 = 0x8000_0000;
/// `V4L2_FRMSIZE_TYPE_DISCRETE` (and `V4L2_FRMIVAL_TYPE_DISCRETE`).
const TYPE_DISCRETE: u32 = 1;
/// `V4L2_BUF_FLAG_ERROR`: the frame is damaged.
pub const BUF_FLAG_ERROR: u32 = 0x40;

#[repr(C)]
#[derive(Default)]
struct Capability {
    driver: [u8; 16],
    card: [u8; 32],
    bus_info: [u8; 32],
    version: u32,
    capabilities: u32,
    device_caps: u32,
    reserved: [u32; 3],
}

#[repr(C)]
#[derive(Default)]
struct FmtDesc {
    index: u32,
    kind: u32,
    flags: u32,
    description: [u8; 32],
    pixelformat: u32,
    mbus_code: u32,
    reserved: [u32; 3],
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct PixFormat {
    width: u32,
    height: u32,
    pixelformat: u32,
    field: u32,
    bytesperline: u32,
    sizeimage: u32,
    colorspace: u32,
    private: u32,
    flags: u32,
    ycbcr_enc: u32,
    quantization: u32,
    xfer_func: u32,
}

/// `struct v4l2_format`: its union holds pointers (`v4l2_window`), so it is pointer-aligned.
#[repr(C)]
union FormatUnion {
    pix: PixFormat,
    raw: [u8; 200],
    _align: [usize; 0],
}

#[repr(C)]
struct Format {
    kind: u32,
    fmt: FormatUnion,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Fract {
    numerator: u32,
    denominator: u32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CaptureParm {
    capability: u32,
    capturemode: u32,
    timeperframe: Fract,
    extendedmode: u32,
    readbuffers: u32,
    reserved: [u32; 4],
}

#[repr(C)]
union StreamParmUnion {
    capture: CaptureParm,
    raw: [u8; 200],
}

#[repr(C)]
struct StreamParm {
    kind: u32,
    parm: StreamParmUnion,
}

#[repr(C)]
#[derive(Default)]
struct FrmSizeEnum {
    index: u32,
    pixel_format: u32,
    kind: u32,
    /// `discrete {width, height}` or `stepwise {min_width, max_width, step_width, min_height,
    /// max_height, step_height}`.
    size: [u32; 6],
    reserved: [u32; 2],
}

#[repr(C)]
#[derive(Default)]
struct FrmIvalEnum {
    index: u32,
    pixel_format: u32,
    width: u32,
    height: u32,
    kind: u32,
    /// `discrete` (a fraction) or `stepwise {min, max, step}` (three fractions).
    interval: [Fract; 3],
    reserved: [u32; 2],
}

#[repr(C)]
#[derive(Default)]
struct RequestBuffers {
    count: u32,
    kind: u32,
    memory: u32,
    capabilities: u32,
    flags: u8,
    reserved: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy)]
union BufferM {
    offset: u32,
    userptr: libc::c_ulong,
    _planes: *mut libc::c_void,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Buffer {
    index: u32,
    kind: u32,
    bytesused: u32,
    flags: u32,
    field: u32,
    timestamp: libc::timeval,
    timecode: [u32; 4],
    sequence: u32,
    memory: u32,
    m: BufferM,
    length: u32,
    reserved2: u32,
    request_fd: u32,
}

impl Buffer {
    fn new(index: u32) -> Self {
        Buffer {
            index,
            kind: BUF_TYPE_VIDEO_CAPTURE,
            bytesused: 0,
            flags: 0,
            field: 0,
            timestamp: libc::timeval { tv_sec: 0, tv_usec: 0 },
            timecode: [0; 4],
            sequence: 0,
            memory: MEMORY_MMAP,
            m: BufferM { userptr: 0 },
            length: 0,
            reserved2: 0,
            request_fd: 0,
        }
    }
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
const _: () = {
    assert!(size_of::<Capability>() == 104);
    assert!(size_of::<FmtDesc>() == 64);
    assert!(size_of::<Format>() == 208);
    assert!(size_of::<StreamParm>() == 204);
    assert!(size_of::<FrmSizeEnum>() == 44);
    assert!(size_of::<FrmIvalEnum>() == 52);
    assert!(size_of::<RequestBuffers>() == 20);
    assert!(size_of::<Buffer>() == 88);
};

/// `_IOC(dir, 'V', nr, size)` as Linux encodes it on x86 and ARM.
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((b'V' as u64) << 8) | nr
}
const READ: u64 = 2;
const WRITE: u64 = 1;
const QUERYCAP: u64 = ioc(READ, 0, size_of::<Capability>());
const ENUM_FMT: u64 = ioc(READ | WRITE, 2, size_of::<FmtDesc>());
const S_FMT: u64 = ioc(READ | WRITE, 5, size_of::<Format>());
const REQBUFS: u64 = ioc(READ | WRITE, 8, size_of::<RequestBuffers>());
const QUERYBUF: u64 = ioc(READ | WRITE, 9, size_of::<Buffer>());
const QBUF: u64 = ioc(READ | WRITE, 15, size_of::<Buffer>());
const DQBUF: u64 = ioc(READ | WRITE, 17, size_of::<Buffer>());
const STREAMON: u64 = ioc(WRITE, 18, size_of::<libc::c_int>());
const STREAMOFF: u64 = ioc(WRITE, 19, size_of::<libc::c_int>());
const S_PARM: u64 = ioc(READ | WRITE, 22, size_of::<StreamParm>());
const ENUM_FRAMESIZES: u64 = ioc(READ | WRITE, 74, size_of::<FrmSizeEnum>());
const ENUM_FRAMEINTERVALS: u64 = ioc(READ | WRITE, 75, size_of::<FrmIvalEnum>());

/// One ioctl on `fd` with `arg`, retried on EINTR.
fn ioctl<T>(fd: &File, request: u64, arg: &mut T) -> io::Result<()> {
    loop {
        // SAFETY: `arg` is a live, exclusively borrowed `#[repr(C)]` value of the size `request`
        // encodes (checked above), which is all the kernel reads or writes.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as _, arg as *mut T) };
        if r != -1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A discrete size or rate, or a range the driver takes values of (its step is left out: the
/// values asked for are the range's ends and the usual ones within it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range<T> {
    /// These values only.
    Discrete(T),
    /// From `min` to `max`.
    Stepwise {
        /// The least.
        min: T,
        /// The most.
        max: T,
    },
}

/// An opened V4L2 capture node.
#[derive(Debug)]
pub struct Device {
    file: File,
}

/// What `QUERYCAP` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caps {
    /// The device's name (`card`).
    pub card: String,
    /// It captures video and can stream.
    pub streaming_capture: bool,
}

fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_owned()
}

impl Device {
    /// Opens the node (non-blocking: a read waits in `poll`, never in the kernel).
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open(path)?;
        Ok(Device { file })
    }

    /// The node's name and whether it is a streaming capture node.
    pub fn caps(&self) -> io::Result<Caps> {
        let mut c = Capability::default();
        ioctl(&self.file, QUERYCAP, &mut c)?;
        let caps = if c.capabilities & CAP_DEVICE_CAPS != 0 { c.device_caps } else { c.capabilities };
        Ok(Caps { card: text(&c.card), streaming_capture: caps & CAP_VIDEO_CAPTURE != 0 && caps & CAP_STREAMING != 0 })
    }

    /// The fourcc codes of the capture formats.
    pub fn formats(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for index in 0..64 {
            let mut d = FmtDesc { index, kind: BUF_TYPE_VIDEO_CAPTURE, ..FmtDesc::default() };
            if ioctl(&self.file, ENUM_FMT, &mut d).is_err() {
                break;
            }
            out.push(d.pixelformat);
        }
        out
    }

    /// The sizes a format comes in.
    pub fn sizes(&self, fourcc: u32) -> Vec<Range<(u32, u32)>> {
        let mut out = Vec::new();
        for index in 0..256 {
            let mut s = FrmSizeEnum { index, pixel_format: fourcc, ..FrmSizeEnum::default() };
            if ioctl(&self.file, ENUM_FRAMESIZES, &mut s).is_err() {
                break;
            }
            if s.kind == TYPE_DISCRETE {
                out.push(Range::Discrete((s.size[0], s.size[1])));
            } else {
                out.push(Range::Stepwise { min: (s.size[0], s.size[3]), max: (s.size[1], s.size[4]) });
                break;
            }
        }
        out
    }

    /// The frame intervals (seconds as `(numerator, denominator)`) a format at a size comes at.
    pub fn intervals(&self, fourcc: u32, (width, height): (u32, u32)) -> Vec<Range<(u32, u32)>> {
        let mut out = Vec::new();
        for index in 0..64 {
            let mut i = FrmIvalEnum { index, pixel_format: fourcc, width, height, ..FrmIvalEnum::default() };
            if ioctl(&self.file, ENUM_FRAMEINTERVALS, &mut i).is_err() {
                break;
            }
            let f = |x: Fract| (x.numerator, x.denominator);
            if i.kind == TYPE_DISCRETE {
                out.push(Range::Discrete(f(i.interval[0])));
            } else {
                out.push(Range::Stepwise { min: f(i.interval[0]), max: f(i.interval[1]) });
                break;
            }
        }
        out
    }

    /// Sets the format and size; returns what the driver took (`(fourcc, width, height,
    /// bytes per line)`), which may differ.
    pub fn set_format(&self, fourcc: u32, (width, height): (u32, u32)) -> io::Result<(u32, u32, u32, u32)> {
        let pix = PixFormat { width, height, pixelformat: fourcc, ..PixFormat::default() };
        let mut f = Format { kind: BUF_TYPE_VIDEO_CAPTURE, fmt: FormatUnion { raw: [0; 200] } };
        f.fmt.pix = pix;
        ioctl(&self.file, S_FMT, &mut f)?;
        // SAFETY: a capture format's union holds `pix` (the kernel wrote it for this type).
        let p = unsafe { f.fmt.pix };
        Ok((p.pixelformat, p.width, p.height, p.bytesperline))
    }

    /// Asks for one frame every `numerator / denominator` s; drivers without rate control refuse
    /// (the mode's own rate is what they give, so that is not an error here).
    pub fn set_interval(&self, (numerator, denominator): (u32, u32)) {
        let capture = CaptureParm { timeperframe: Fract { numerator, denominator }, ..CaptureParm::default() };
        let mut p = StreamParm { kind: BUF_TYPE_VIDEO_CAPTURE, parm: StreamParmUnion { raw: [0; 200] } };
        p.parm.capture = capture;
        let _ = ioctl(&self.file, S_PARM, &mut p);
    }

    /// Maps `count` driver buffers, queues them all and starts streaming.
    pub fn start(&self, count: u32) -> io::Result<Vec<Mapped>> {
        let mut req = RequestBuffers { count, kind: BUF_TYPE_VIDEO_CAPTURE, memory: MEMORY_MMAP, ..Default::default() };
        ioctl(&self.file, REQBUFS, &mut req)?;
        if req.count == 0 {
            return Err(io::Error::other("the driver gave no buffers"));
        }
        let mut maps = Vec::new();
        for index in 0..req.count {
            let mut b = Buffer::new(index);
            ioctl(&self.file, QUERYBUF, &mut b)?;
            // SAFETY: `m.offset` is what QUERYBUF sets for MMAP buffers.
            let offset = unsafe { b.m.offset };
            maps.push(Mapped::new(&self.file, b.length as usize, offset)?);
            ioctl(&self.file, QBUF, &mut b)?;
        }
        let mut kind = BUF_TYPE_VIDEO_CAPTURE as libc::c_int;
        ioctl(&self.file, STREAMON, &mut kind)?;
        Ok(maps)
    }

    /// Stops streaming (the buffers are returned to the driver).
    pub fn stop(&self) {
        let mut kind = BUF_TYPE_VIDEO_CAPTURE as libc::c_int;
        let _ = ioctl(&self.file, STREAMOFF, &mut kind);
    }

    /// Waits up to `timeout_ms` for a frame to be ready; `false` when none came.
    pub fn wait(&self, timeout_ms: i32) -> io::Result<bool> {
        let mut pfd = libc::pollfd { fd: self.file.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        match r {
            -1 if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted => Ok(false),
            -1 => Err(io::Error::last_os_error()),
            0 => Ok(false),
            _ if pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0 => Err(io::Error::other("the camera went away")),
            _ => Ok(true),
        }
    }

    /// Takes a filled buffer, if one is ready.
    #[allow(clippy::useless_conversion)] // time_t and suseconds_t are 32-bit on some targets
    pub fn dequeue(&self) -> io::Result<Option<Dequeued>> {
        let mut b = Buffer::new(0);
        match ioctl(&self.file, DQBUF, &mut b) {
            Ok(()) => Ok(Some(Dequeued {
                index: b.index as usize,
                bytes: b.bytesused as usize,
                flags: b.flags,
                timestamp_us: i64::from(b.timestamp.tv_sec)
                    .saturating_mul(1_000_000)
                    .saturating_add(i64::from(b.timestamp.tv_usec)),
            })),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Gives buffer `index` back to the driver to fill again.
    pub fn queue(&self, index: usize) -> io::Result<()> {
        let mut b = Buffer::new(index as u32);
        ioctl(&self.file, QBUF, &mut b)
    }
}

/// A buffer the driver filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dequeued {
    /// Which mapped buffer.
    pub index: usize,
    /// How many of its bytes hold the frame.
    pub bytes: usize,
    /// `V4L2_BUF_FLAG_*`.
    pub flags: u32,
    /// When the frame was captured, µs on the buffer's clock (CLOCK_MONOTONIC for cameras).
    pub timestamp_us: i64,
}

/// A driver buffer mapped into this process, unmapped when dropped.
#[derive(Debug)]
pub struct Mapped {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value alone.
unsafe impl Send for Mapped {}

impl Mapped {
    fn new(file: &File, len: usize, offset: u32) -> io::Result<Self> {
        // SAFETY: a fresh shared read-only mapping of the device at the driver's offset; the
        // kernel checks both.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapped { ptr, len })
    }

    /// The first `n` bytes (at most the buffer).
    ///
    /// # Safety
    /// The buffer must be dequeued (`VIDIOC_DQBUF`) and stay so while the slice lives: the kernel
    /// writes into a queued buffer behind the slice's back.
    pub unsafe fn bytes(&self, n: usize) -> &[u8] {
        // SAFETY: the mapping is `len` bytes long and lives as long as `self`; the caller holds the
        // buffer dequeued.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, n.min(self.len)) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

#[cfg(all(test, target_os = "linux", target_pointer_width = "64"))]
mod tests {
    use std::mem::offset_of;

    use super::*;

    /// The request numbers and layouts as `linux/videodev2.h` has them (printed by a C program
    /// compiled against the header on x86_64: `printf("%lx", VIDIOC_QUERYCAP)`, `offsetof`).
    #[test]
    fn requests_and_layouts_are_the_kernels() {
        let requests = [
            (QUERYCAP, 0x8068_5600),
            (ENUM_FMT, 0xc040_5602),
            (S_FMT, 0xc0d0_5605),
            (REQBUFS, 0xc014_5608),
            (QUERYBUF, 0xc058_5609),
            (QBUF, 0xc058_560f),
            (DQBUF, 0xc058_5611),
            (STREAMON, 0x4004_5612),
            (STREAMOFF, 0x4004_5613),
            (S_PARM, 0xc0cc_5616),
            (ENUM_FRAMESIZES, 0xc02c_564a),
            (ENUM_FRAMEINTERVALS, 0xc034_564b),
        ];
        for (ours, kernels) in requests {
            assert_eq!(ours, kernels, "{ours:#x}");
        }
        assert_eq!(offset_of!(Buffer, timestamp), 24);
        assert_eq!(offset_of!(Buffer, timecode), 40);
        assert_eq!(offset_of!(Buffer, sequence), 56);
        assert_eq!(offset_of!(Buffer, m), 64);
        assert_eq!(offset_of!(Buffer, length), 72);
        assert_eq!(offset_of!(Buffer, request_fd), 80);
        assert_eq!(offset_of!(Format, fmt), 8);
        assert_eq!(offset_of!(StreamParm, parm), 4);
        assert_eq!(offset_of!(FrmSizeEnum, size), 12);
        assert_eq!(offset_of!(FrmIvalEnum, interval), 20);
        assert_eq!(size_of::<PixFormat>(), 48);
    }

    #[test]
    fn a_plain_file_is_refused_by_every_call_without_a_panic() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let d = Device::open(file.path()).unwrap();
        assert_eq!(d.caps().unwrap_err().raw_os_error(), Some(libc::ENOTTY));
        assert_eq!(d.formats(), Vec::<u32>::new());
        assert!(d.sizes(0).is_empty() && d.intervals(0, (640, 480)).is_empty());
        assert!(d.set_format(0, (640, 480)).is_err());
        assert!(d.start(4).is_err());
        assert!(d.dequeue().is_err());
        d.set_interval((1, 30));
        d.stop();
    }
}
