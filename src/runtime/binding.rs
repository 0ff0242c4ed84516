//! Running a model on an input buffer in place: the caller filled it (host memory on the CPU
//! path; on the GPU path, device memory our kernels wrote) and it is handed to ONNX Runtime by
//! pointer with its memory location, so nothing is copied on the way in when the session runs
//! where the buffer is; outputs come back in host memory. Both back ends go through this one
//! function, so its shapes and batch handling are tested on every CPU run.
//!
//! Not `IoBinding`: in ort 2.0.0-rc.15, binding a borrowed tensor first clones it (a copy per
//! run, against the point), and the clone of a host tensor re-enters ort's identity-session lock
//! and hangs (seen here: every run stopped in `IdentitySessionHandle::new`). A plain run with a
//! tensor made `from_raw` does what binding would.

use std::marker::PhantomData;

use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::session::{Session, SessionOutputs};
use ort::value::{Shape, TensorRefMut};

use crate::error::{Error, Result};

/// Where a bound buffer lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    Host,
    /// Device memory of CUDA GPU `device` (as ONNX Runtime's CUDA and TensorRT providers see it).
    Cuda {
        device: i32,
    },
}

impl Memory {
    fn info(self) -> std::result::Result<MemoryInfo<'static>, ort::Error> {
        match self {
            Memory::Host => MemoryInfo::new(
                AllocationDevice::CPU,
                0,
                AllocatorType::Device,
                MemoryType::Default,
            ),
            Memory::Cuda { device } => MemoryInfo::new(
                AllocationDevice::CUDA,
                device,
                AllocatorType::Device,
                MemoryType::Default,
            ),
        }
    }
}

/// An NCHW float32 model input in place: `n × 3 × h × w` values at `ptr` in `memory`.
pub struct BoundInput<'a> {
    ptr: *mut f32,
    shape: [usize; 4],
    memory: Memory,
    _buffer: PhantomData<&'a mut [f32]>,
}

impl<'a> BoundInput<'a> {
    /// A host buffer holding at least the shape's values.
    pub fn host(buffer: &'a mut [f32], shape: [usize; 4]) -> Result<BoundInput<'a>> {
        let need: usize = shape.iter().product();
        if buffer.len() < need || need == 0 {
            return Err(Error::Invalid(format!(
                "model input of shape {shape:?} needs {need} values, the buffer holds {}",
                buffer.len()
            )));
        }
        Ok(BoundInput {
            ptr: buffer.as_mut_ptr(),
            shape,
            memory: Memory::Host,
            _buffer: PhantomData,
        })
    }

    /// Device memory at `ptr` on GPU `device`.
    ///
    /// # Safety
    /// `ptr` must hold the shape's float32 values on that device and stay allocated while the run
    /// lasts, and the kernels writing it must have finished before the run starts: ONNX Runtime
    /// runs on its own stream, so synchronise the producing stream from the host first (or give
    /// the providers that stream as their compute stream).
    pub unsafe fn cuda(ptr: u64, device: i32, shape: [usize; 4]) -> BoundInput<'a> {
        BoundInput {
            ptr: ptr as *mut f32,
            shape,
            memory: Memory::Cuda { device },
            _buffer: PhantomData,
        }
    }

    pub fn batch(&self) -> usize {
        self.shape[0]
    }

    /// The values of a host input (tests compare inputs made in different ways).
    #[cfg(test)]
    pub fn host_values(&self) -> Vec<f32> {
        assert_eq!(self.memory, Memory::Host);
        let len = self.shape.iter().product();
        // SAFETY: a host input holds the shape's values for its lifetime (`host`).
        unsafe { std::slice::from_raw_parts(self.ptr, len) }.to_vec()
    }
}

/// Runs `session` (model `model`) on `input` (its graph input `input_name`) and hands the
/// outputs, in host memory, to `read`; a failure is the model's inference error.
pub fn run_in_place<T>(
    session: &mut Session,
    model: &str,
    (input_name, input): (&str, &BoundInput<'_>),
    read: impl FnOnce(&SessionOutputs<'_>) -> std::result::Result<T, String>,
) -> Result<T> {
    run(session, (input_name, input), read).map_err(|message| Error::Inference {
        model: model.to_string(),
        message,
    })
}

fn run<T>(
    session: &mut Session,
    (input_name, input): (&str, &BoundInput<'_>),
    read: impl FnOnce(&SessionOutputs<'_>) -> std::result::Result<T, String>,
) -> std::result::Result<T, String> {
    let err = |e: ort::Error| e.to_string();
    let info = input.memory.info().map_err(err)?;
    // SAFETY: `BoundInput` guarantees the pointer holds the shape's values in that memory and
    // outlives this call (its lifetime, or the `cuda` constructor's contract); the tensor is
    // dropped before returning, after the run.
    let tensor = unsafe {
        TensorRefMut::<f32>::from_raw(
            info,
            input.ptr.cast(),
            Shape::new(input.shape.map(|d| d as i64)),
        )
    }
    .map_err(err)?;
    let results = session
        .run(ort::inputs![input_name => tensor])
        .map_err(err)?;
    read(&results)
}
