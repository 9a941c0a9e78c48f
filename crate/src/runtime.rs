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
