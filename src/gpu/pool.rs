//! Reusable buffers, so a pipeline in its steady state allocates no device memory: a buffer taken
//! for a batch goes back to the pool when the batch is done with it, and the next batch of the same
//! or a smaller size gets it again (the smallest free buffer that is large enough). The logic is
//! generic over the allocator: the GPU path allocates device memory, the tests host memory.
//!
//! A device buffer handed back may still be in use by queued GPU work. cudarc records the reads
//! and writes of buffers passed to its launches and copies and makes the next user wait for them;
//! a buffer whose pointer went elsewhere (to ONNX Runtime, or read by more than one stream) must be
//! ordered by the caller with `device::handoff` before it is dropped.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Result;

/// Allocates the pool's buffers.
pub trait Allocator: Send + Sync + 'static {
    type Buffer: Send;
    fn allocate(&self, len: usize) -> Result<Self::Buffer>;
    fn capacity(buffer: &Self::Buffer) -> usize;
}

pub struct Pool<A: Allocator> {
    allocator: A,
    free: Mutex<Vec<A::Buffer>>,
    allocations: AtomicUsize,
}

impl<A: Allocator> Pool<A> {
    pub fn new(allocator: A) -> Arc<Pool<A>> {
        Arc::new(Pool {
            allocator,
            free: Mutex::new(Vec::new()),
            allocations: AtomicUsize::new(0),
        })
    }

    /// A buffer of at least `len` elements, reused when one is free.
    pub fn take(self: &Arc<Self>, len: usize) -> Result<Pooled<A>> {
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            let best = free
                .iter()
                .enumerate()
                .filter(|(_, b)| A::capacity(b) >= len)
                .min_by_key(|(_, b)| A::capacity(b))
                .map(|(i, _)| i);
            best.map(|i| free.swap_remove(i))
        };
        let buffer = match reused {
            Some(b) => b,
            None => {
                self.allocations.fetch_add(1, Ordering::Relaxed);
                self.allocator.allocate(len)?
            }
        };
        Ok(Pooled {
            buffer: Some(buffer),
            len,
            pool: self.clone(),
        })
    }

    /// How many buffers were allocated so far (not reused).
    pub fn allocations(&self) -> usize {
        self.allocations.load(Ordering::Relaxed)
    }
}

/// A buffer on loan from a pool; `len` is what was asked for (the buffer may be larger).
pub struct Pooled<A: Allocator> {
    buffer: Option<A::Buffer>,
    len: usize,
    pool: Arc<Pool<A>>,
}

impl<A: Allocator> Pooled<A> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<A: Allocator> Deref for Pooled<A> {
    type Target = A::Buffer;
    fn deref(&self) -> &A::Buffer {
        self.buffer.as_ref().expect("present until dropped")
    }
}

impl<A: Allocator> DerefMut for Pooled<A> {
    fn deref_mut(&mut self) -> &mut A::Buffer {
        self.buffer.as_mut().expect("present until dropped")
    }
}

impl<A: Allocator> Drop for Pooled<A> {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            let mut free = self.pool.free.lock().unwrap_or_else(|e| e.into_inner());
            free.push(b);
        }
    }
}

/// Device memory of elements `T`, allocated (zeroed) on a stream. A reused buffer keeps the
/// previous batch's values: every kernel writes all of its output, so none are read.
pub struct DeviceAllocator<T> {
    stream: Arc<cudarc::driver::CudaStream>,
    _element: std::marker::PhantomData<fn() -> T>,
}

impl<T> DeviceAllocator<T> {
    pub fn new(stream: Arc<cudarc::driver::CudaStream>) -> DeviceAllocator<T> {
        DeviceAllocator {
            stream,
            _element: std::marker::PhantomData,
        }
    }
}

impl<T> Allocator for DeviceAllocator<T>
where
    T: cudarc::driver::DeviceRepr + cudarc::driver::ValidAsZeroBits + Send + 'static,
{
    type Buffer = cudarc::driver::CudaSlice<T>;

    fn allocate(&self, len: usize) -> Result<Self::Buffer> {
        self.stream.alloc_zeros::<T>(len.max(1)).map_err(|e| {
            crate::error::Error::Gpu(format!(
                "cannot allocate {:.1} MiB of device memory: {e} (too many videos or too large a batch for this GPU's memory?)",
                (len * std::mem::size_of::<T>()) as f64 / (1 << 20) as f64
            ))
        })
    }

    fn capacity(buffer: &Self::Buffer) -> usize {
        buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Host memory standing in for the device.
    struct Host;

    impl Allocator for Host {
        type Buffer = Vec<u8>;
        fn allocate(&self, len: usize) -> Result<Vec<u8>> {
            Ok(vec![0; len])
        }
        fn capacity(buffer: &Vec<u8>) -> usize {
            buffer.len()
        }
    }

    #[test]
    fn steady_state_allocates_nothing() {
        let pool = Pool::new(Host);
        // Two batches in flight at a time, 100 batches, the last one short.
        for batch in 0..100 {
            let len = if batch == 99 { 300 } else { 1000 };
            let a = pool.take(len).unwrap();
            let b = pool.take(len).unwrap();
            assert!(a.capacity() >= len && b.len() == len);
        }
        assert_eq!(pool.allocations(), 2);
    }

    #[test]
    fn the_smallest_buffer_that_fits_is_reused() {
        let pool = Pool::new(Host);
        drop((
            pool.take(10).unwrap(),
            pool.take(100).unwrap(),
            pool.take(1000).unwrap(),
        ));
        assert_eq!(pool.take(50).unwrap().capacity(), 100);
        assert_eq!(pool.take(1000).unwrap().capacity(), 1000);
        // Larger than anything free: a new allocation.
        assert_eq!(pool.take(5000).unwrap().capacity(), 5000);
        assert_eq!(pool.allocations(), 4);
    }

    #[test]
    fn buffers_return_from_other_threads() {
        let pool = Pool::new(Host);
        let (tx, rx) = crossbeam_channel::bounded(2);
        let consumer = std::thread::spawn(move || rx.iter().for_each(drop::<Pooled<Host>>));
        for _ in 0..50 {
            tx.send(pool.take(64).unwrap()).unwrap();
        }
        drop(tx);
        consumer.join().unwrap();
        // At most the channel's two, one in the consumer's hands and one being taken.
        assert!(pool.allocations() <= 4, "{}", pool.allocations());
    }
}
