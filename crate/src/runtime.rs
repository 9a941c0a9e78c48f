//! Process-wide settings of the compute runtime, decided once before any candle op runs.

/// candle splits element-wise ops of 64K+ elements over a spin-waiting barrier pool of
/// `CANDLE_NUM_THREADS` threads. On the 2-core machines this project targets, one descheduled
/// pool thread stalls every such op by a scheduler slice (measured: a layer norm of 192x384
/// went from 80 us to 3 ms while another process used a core; Q8_0 generation went from 109 to
/// 294 ms per word), and the ops are memory-bound, so a second core buys little even when
/// idle. Unless the user set it, run them on the calling thread; matmuls still use
/// `RAYON_NUM_THREADS` threads. The pool is sized once per process, so this must run before
/// the first candle op: the Node addon calls it when it is loaded, Rust users before they
/// build a model (the embedder also calls it, for programs that start there).
pub fn serial_elementwise_by_default() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            std::env::set_var("CANDLE_NUM_THREADS", "1");
        }
    });
}

/// Hands freed heap pages back to the operating system.
///
/// glibc raises its mmap threshold after the first large tensor is freed, so later tensors of
/// up to 32 MB come from the heap, and the pages they leave behind stay counted in the process's
/// memory: a training run of three 20-step segments, each followed by a generator for scoring,
/// climbed from 2.1 to 5.2 GB peak RSS with under 2 GB live. A fixed low threshold cured that but
/// halved training speed (every tensor a fresh, zeroed mapping), so instead the freed pages are
/// returned at points where much was just dropped: after each optimizer step, after training,
/// and when a model is closed. A no-op where the allocator is not glibc's.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> std::os::raw::c_int;
        }
        // SAFETY: malloc_trim only walks glibc's own arenas under their locks.
        unsafe {
            malloc_trim(0);
        }
    }
}
