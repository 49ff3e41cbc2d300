//! Media: sans-IO pieces (the jitter buffer, the packet format, the senders' and receivers'
//! state), the codecs, and the sources and sinks.

pub mod audio;
pub mod bitrate;
pub mod codec;
pub mod feedback;
pub mod io;
pub mod jitter;
pub mod packet;
pub mod pipeline;
pub mod video;
pub mod video_pipeline;
