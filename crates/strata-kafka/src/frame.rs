//! Length-prefixed frames (`[i32 size][size bytes]`), the unit of every Kafka request and
//! response. The size comes from the peer, so it is checked against the caller's limits before
//! anything is allocated, and the buffer then grows with the bytes that actually arrive: a peer
//! that announces a large frame and sends a few bytes costs one small buffer, never the size it
//! announced. Memory for a frame stays below twice what was received plus [`INITIAL_CAPACITY`].
//!
//! Cancellation: `read_frame` is not cancellation-safe (bytes already read are lost when the
//! future is dropped); callers select on it only where the connection is closed afterwards.

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Bytes reserved for a frame before any of its body has arrived.
pub const INITIAL_CAPACITY: usize = 64 * 1024;

/// The sizes a reader accepts.
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// Smallest valid frame (a request header needs 8 bytes, a response header 4).
    pub min: usize,
    /// Largest frame (`socket.request.max.bytes` for a broker).
    pub max: usize,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: i64, max: usize },
    #[error("frame of {size} bytes is shorter than the {min} bytes of a header")]
    TooSmall { size: i64, min: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one frame's body. `Ok(None)` when the stream ends cleanly before a new frame starts.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limits: FrameLimits,
) -> Result<Option<BytesMut>, FrameError> {
    let size = match reader.read_i32().await {
        Ok(size) => size,
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    check_size(size, limits)?;
    let size = size as usize;
    let mut frame = BytesMut::with_capacity(size.min(INITIAL_CAPACITY));
    while frame.len() < size {
        let missing = size - frame.len();
        if frame.capacity() == frame.len() {
            // Doubling keeps copies amortised; never past the announced size.
            frame.reserve(missing.min(frame.len().max(INITIAL_CAPACITY)));
        }
        let spare = frame.capacity() - frame.len();
        let read = reader
            .read_buf(&mut (&mut frame).limit(spare.min(missing)))
            .await?;
        if read == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "stream ended {missing} bytes short of a {size}-byte frame",
                    missing = size - frame.len()
                ),
            )
            .into());
        }
    }
    Ok(Some(frame))
}

/// Checks an announced frame size against `limits`.
pub fn check_size(size: i32, limits: FrameLimits) -> Result<(), FrameError> {
    if size < 0 || size as usize > limits.max {
        return Err(FrameError::TooLarge {
            size: i64::from(size),
            max: limits.max,
        });
    }
    if (size as usize) < limits.min {
        return Err(FrameError::TooSmall {
            size: i64::from(size),
            min: limits.min,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: FrameLimits = FrameLimits {
        min: 8,
        max: 1 << 20,
    };

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[tokio::test]
    async fn reads_consecutive_frames_and_a_clean_end() {
        let mut input = framed(&[1; 10]);
        input.extend(framed(&[2; 200_000]));
        let mut reader = &input[..];
        let a = read_frame(&mut reader, LIMITS).await.unwrap().unwrap();
        assert_eq!(&a[..], &[1; 10]);
        let b = read_frame(&mut reader, LIMITS).await.unwrap().unwrap();
        assert_eq!(b.len(), 200_000);
        assert!(b.iter().all(|&x| x == 2));
        assert!(read_frame(&mut reader, LIMITS).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn refuses_sizes_outside_the_limits_before_reading_the_body() {
        for size in [-1i32, i32::MIN, (1 << 20) + 1, i32::MAX] {
            let input = size.to_be_bytes();
            let err = read_frame(&mut &input[..], LIMITS).await.unwrap_err();
            assert!(matches!(err, FrameError::TooLarge { .. }), "{size}: {err}");
        }
        let input = 7i32.to_be_bytes();
        let err = read_frame(&mut &input[..], LIMITS).await.unwrap_err();
        assert!(matches!(err, FrameError::TooSmall { .. }));
    }

    #[tokio::test]
    async fn a_large_announcement_with_a_short_body_allocates_little() {
        // Announces the maximum and sends 100 bytes: the reader fails with EOF having reserved
        // only the initial capacity.
        let mut input = (1i32 << 20).to_be_bytes().to_vec();
        input.extend_from_slice(&[0; 100]);
        let err = read_frame(&mut &input[..], LIMITS).await.unwrap_err();
        assert!(
            matches!(err, FrameError::Io(ref e) if e.kind() == std::io::ErrorKind::UnexpectedEof)
        );
    }
}
