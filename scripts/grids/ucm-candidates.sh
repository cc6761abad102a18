# Candidates for the shipped UC Merced model (issue 16): the full pipeline of the shipped recipe
# (fit's defaults: msresnet18 x0.5, a Unit at stage 2, T0 = 5, 100 fine-tune epochs), at 96 px
# (shipped in runs 13-15) and at 128 px (UC Merced is 256 px native; the default since run 16),
# over seeds 1-3 (each also its own 210-image validation split), the Unit removed at once after
# T = 1 (--unit-fade 0, fit's default until run 17). ucm128-fade: the 128 px recipe with its
# Unit faded out over the SNN epochs (--unit-fade 1, the default since run 17).
# `scripts/seed_grid.sh ucm-candidates --latency` adds each model's engine latency and
# `scripts/front.py` plots the two against each other. The ANN lever grid
# (scripts/grids/ann-levers.sh) decides whether mixing or weight averaging join the recipe.
COMMON="--quiet"
CELLS=(
  "ucm96|--input 96 --unit-fade 0|"
  "ucm128|--input 128 --unit-fade 0|"
  "ucm128-fade|--input 128 --unit-fade 1|"
)
