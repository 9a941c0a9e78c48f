//! Process-wide settings of the compute runtime, decided once before any candle op runs.

/// Settles the thread counts of the compute runtime; call before the first candle op (the Node
/// addon does when it is loaded, the embedder when it is built; Rust programs before they build
/// a model). The pools are sized once per process.
///
/// - candle splits element-wise ops of 64K+ elements over a spin-waiting barrier pool of
///   `CANDLE_NUM_THREADS` threads. On the 2-core machines this project targets, one descheduled
///   pool thread stalls every such op by a scheduler slice (measured: a layer norm of 192x384
///   went from 80 us to 3 ms while another process used a core; Q8_0 generation went from 109
///   to 294 ms per word). Unless the user set it, those run on the calling thread; the project's
///   own element-wise kernels use the rayon pool instead (`nn::cpu::par`).
/// - candle asks for the matmul thread count on every matmul, and without `RAYON_NUM_THREADS`
///   that means reading `/proc/cpuinfo` (about 1.5% of a training step's main thread). Unless
///   the user set it, it is set once to the count candle would compute (physical cores), which
///   also sizes rayon's pool to match.
pub fn configure_cpu_threads() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("RAYON_NUM_THREADS").is_none() {
            std::env::set_var("RAYON_NUM_THREADS", candle_core::utils::get_num_threads().to_string());
        }
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
/// returned at points where much was just dropped: after training and when a model is closed
/// (not after each optimizer step: the next step would fault the same pages in again). A no-op where the allocator is not glibc's.
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
