"""One tiny run in a fresh process (``python determinism_worker.py OUT THREADS``): the teacher cache's
bytes, the loss history and the greedy and sampled outputs, as JSON, for test_determinism.py."""

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from tiny import make_examples, make_teacher, make_tokenizer, tiny_config

from distill_hetero.distiller import TeacherCache
from distill_hetero.generation import generate
from distill_hetero.trainer import train

torch.set_num_threads(int(sys.argv[2]))
tokenizer = make_tokenizer()
teacher = make_teacher(tokenizer)
examples = make_examples(tokenizer, 6)
cfg = tiny_config(
    Path(sys.argv[1]).parent / "run",
    **{"student.init": "teacher_prune", "student.num_layers": 2, "student.intermediate_size": 32, "train.steps": 3},
)
cache = TeacherCache(teacher, examples, [0, 2, 4], 8, 1.0, len(tokenizer), tokenizer.pad_token_id, batch_size=4)
result = train(cfg, teacher, tokenizer, examples, teacher_cache=cache, progress=False)
prompts = ["### Instruction: What is it?", "Name three fruits:"]
student = result.distiller.student
out = {
    "cache_sha256": cache.digest(),
    "covered": cache.mean_covered_mass,
    "history": [{k: v for k, v in h.items() if k not in ("step_time_s", "step_cpu_s")} for h in result.history],
    "greedy": generate(student, tokenizer, prompts, 6, 2, 64),
    "sampled": generate(student, tokenizer, prompts, 6, 2, 64, do_sample=True, seed=3),
}
Path(sys.argv[1]).write_text(json.dumps(out))
