//! Process figures from Linux's /proc: CPU time, resident memory, machine memory.

use serde_json::{json, Value};

/// Clock ticks per second of /proc/<pid>/stat times; 100 on every Linux the project targets.
const CLOCK_TICKS: f64 = 100.0;

/// User + system CPU seconds this process has used.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 overall.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / CLOCK_TICKS
}

/// Total machine memory in bytes.
pub fn total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map(|kib| kib * 1024)
        .unwrap_or(0)
}

/// The five memory keys the Node services reported, mapped to what Linux knows of this process:
/// `rss` resident set, `heapTotal` data segment, `heapUsed` anonymous resident memory, `external`
/// file-backed and shared resident memory; `arrayBuffers` has no counterpart and stays 0.
pub fn memory_json() -> Value {
    let m = read_proc_status();
    json!({
        "rss": m.rss,
        "heapTotal": m.data,
        "heapUsed": m.anon,
        "external": m.file_and_shmem,
        "arrayBuffers": 0,
    })
}

#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessMemory {
    pub rss: u64,
    pub data: u64,
    pub anon: u64,
    pub file_and_shmem: u64,
}

pub fn read_proc_status() -> ProcessMemory {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return ProcessMemory::default();
    };
    let mut m = ProcessMemory::default();
    for line in status.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let kib: u64 = rest
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .unwrap_or(0);
        let bytes = kib * 1024;
        match key {
            "VmRSS" => m.rss = bytes,
            "VmData" => m.data = bytes,
            "RssAnon" => m.anon = bytes,
            "RssFile" | "RssShmem" => m.file_and_shmem += bytes,
            _ => {}
        }
    }
    m
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_real_figures() {
        let before = super::cpu_seconds();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(super::cpu_seconds() >= before);
        assert!(super::total_memory() > 0);
        assert!(super::read_proc_status().rss > 0);
    }
}
