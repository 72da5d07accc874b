//! The CPU kernels of the packed encoder and the training engine.

pub mod amx;
pub mod avx512;
pub mod int8;
pub mod packed;

pub use amx::{amx_ready, int8_tiles, Tiles};
pub use avx512::{has_avx512, use_avx512};
pub use packed::*;
