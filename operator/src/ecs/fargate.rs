//! What Fargate allows that the ECS API model does not say: the task sizes (cpu/memory pairs,
//! Linux) and the longest container stop timeout.
//! <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size>

/// The longest container `stopTimeout` Fargate accepts, in seconds.
pub const MAX_STOP_TIMEOUT_SECONDS: i64 = 120;

/// The memory (MiB) one CPU size allows.
enum Memory {
    Listed(&'static [u32]),
    Range {
        smallest: u32,
        largest: u32,
        step: u32,
    },
}

/// Linux task sizes: CPU units (1024 = one vCPU) and the memory each allows. 8 and 16 vCPU
/// need platform version 1.4.0 or later (`LATEST`).
const SIZES: [(u32, Memory); 7] = [
    (256, Memory::Listed(&[512, 1024, 2048])),
    (512, range(1024, 4096, 1024)),
    (1024, range(2048, 8192, 1024)),
    (2048, range(4096, 16384, 1024)),
    (4096, range(8192, 30720, 1024)),
    (8192, range(16384, 61440, 4096)),
    (16384, range(32768, 122880, 8192)),
];

const fn range(smallest: u32, largest: u32, step: u32) -> Memory {
    Memory::Range {
        smallest,
        largest,
        step,
    }
}

impl Memory {
    fn allows(&self, memory: u32) -> bool {
        match *self {
            Memory::Listed(choices) => choices.contains(&memory),
            Memory::Range {
                smallest,
                largest,
                step,
            } => (smallest..=largest).contains(&memory) && (memory - smallest).is_multiple_of(step),
        }
    }

    fn describe(&self) -> String {
        match *self {
            Memory::Listed(choices) => {
                let choices: Vec<String> = choices.iter().map(u32::to_string).collect();
                match choices.split_last() {
                    Some((last, rest)) if !rest.is_empty() => {
                        format!("memory {} or {last}", rest.join(", "))
                    }
                    _ => format!("memory {}", choices.join("")),
                }
            }
            Memory::Range {
                smallest,
                largest,
                step,
            } => format!("memory {smallest}-{largest} in steps of {step}"),
        }
    }
}

/// Whether `cpu` units with `memory` MiB is a Fargate (Linux) task size.
pub fn is_task_size(cpu: u32, memory: u32) -> bool {
    SIZES
        .iter()
        .any(|(size, choices)| *size == cpu && choices.allows(memory))
}

/// Every valid size, for error messages: `cpu 256: memory 512, 1024 or 2048; cpu 512: ...`.
pub fn task_sizes() -> String {
    SIZES
        .iter()
        .map(|(cpu, choices)| format!("cpu {cpu}: {}", choices.describe()))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_sizes_are_accepted() {
        for (cpu, memory) in [
            (256, 512),
            (256, 2048),
            (512, 3072),
            (1024, 8192),
            (2048, 5120),
            (4096, 30720),
            (8192, 20480),
            (16384, 122880),
        ] {
            assert!(is_task_size(cpu, memory), "{cpu}/{memory}");
        }
    }

    #[test]
    fn other_pairs_are_rejected() {
        for (cpu, memory) in [
            (256, 1536),
            (256, 4096),
            (512, 512),
            (512, 1536),
            (1024, 1024),
            (4096, 31744),
            (8192, 18432),
            (16384, 36864),
            (300, 1024),
            (0, 0),
        ] {
            assert!(!is_task_size(cpu, memory), "{cpu}/{memory}");
        }
    }

    #[test]
    fn the_description_lists_every_cpu_size() {
        let text = task_sizes();
        for cpu in [256, 512, 1024, 2048, 4096, 8192, 16384] {
            assert!(text.contains(&format!("cpu {cpu}:")), "{text}");
        }
        assert!(
            text.contains("cpu 256: memory 512, 1024 or 2048;"),
            "{text}"
        );
        assert!(text.contains("cpu 1024: memory 2048-8192 in steps of 1024"));
    }
}
