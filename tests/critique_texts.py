"""Real-format critique texts written for the tests, as the checkpoints lay them out (and as they drift)."""

T2I_OK = """# User Request Analysis
The user wants a watercolor painting of a lighthouse on a cliff at sunset, with the word "HOPE" painted on the lighthouse.
# Detailed Judgement
1. Text Faithfulness:
## Justification: The lighthouse, the cliff and the sunset sky are all present in a watercolor style. The word on the tower is present but the cliff is smaller than implied.
## Score: 3.5
2. Physical and Visual Quality:
## Justification: The perspective of the tower is slightly skewed and the waves show a repeating texture.
## Score: 3.0
3. Text Rendering:
## Justification: "HOPE" is legible but the E is malformed.
## Score: 2.5
# Summary: A faithful watercolor with a small perspective error and imperfect lettering.

# User Request Refinement:
## Refinement Comments: Ask explicitly for a straight vertical tower and clean block letters.
## Refined Request: A watercolor painting of a tall, straight lighthouse on a high cliff at sunset, with the word "HOPE" in clean block letters on the tower.
"""

EDIT_OK = """# User Request Analysis
Replace the blue car with a red bicycle and keep the street unchanged.
# Detailed Judgement
1. Text Faithfulness:
## Justification: The car is replaced by a bicycle, but it is orange rather than red.
## Score: 3.0
2. Image Faithfulness:
## Justification: The street, the shop fronts and the lighting are unchanged.
## Score: 4.0
3. Physical and Visual Quality:
## Justification: The bicycle casts no shadow and its front wheel is slightly oval.
## Score: 2.5
4. Text Rendering:
## Justification: No text was requested.
## Score: N/A
# Summary: The edit is mostly right; the colour and the shadow are off.

# User Request Refinement:
## Refinement Comments: Name the exact colour and ask for a consistent shadow.
## Refined Request: Replace the blue car with a bright red bicycle that casts a shadow matching the street lighting; keep everything else unchanged.
"""

# Score first, then justification (one upstream prompt orders them this way).
T2I_SCORE_FIRST = """# User Request Analysis
A cat on a sofa.
# Detailed Judgement
1. Text Faithfulness:
## Score: 4
## Justification: A cat lies on a sofa.
2. Physical and Visual Quality:
## Score: 3.25
## Justification: Slight blur on the paws.
3. Text Rendering:
## Score: N/A
## Justification: No text requested.
# Summary: Good.

# User Request Refinement:
## Refinement Comments: Ask for sharp detail.
## Refined Request: A cat lying on a sofa, sharp detail on the paws.
"""

BOLD = """# User Request Analysis
Two dogs playing.
# Detailed Judgement
1. **Text Faithfulness**:
**Justification:** Two dogs are present and playing.
**Score:** 3.5
2. **Physical and Visual Quality**:
## Justification: **One dog has five legs.**
## Score: **2.0**
3. **Text Rendering**:
## Justification: none requested
## Score: **N/A**
# Summary: Anatomy problem.

# User Request Refinement:
## Refinement Comments: Stress correct anatomy.
## **Refined Request:** Two dogs playing in a park, each with four legs and natural anatomy.
"""

NA_WITH_REASON = T2I_OK.replace("## Score: 2.5", "## Score: N/A (no text requested)")
SLASH_FOUR = T2I_OK.replace("## Score: 3.5", "## Score: 3.5/4")
OVER_RANGE = T2I_OK.replace("## Score: 3.5", "## Score: 4.2").replace("## Score: 3.0", "## Score: 0.5")

OUT_OF_ORDER = """# User Request Analysis
A red apple.
# Detailed Judgement
1. Physical and Visual Quality:
## Justification: Clean and plausible.
## Score: 3.75
2. Text Rendering:
## Justification: No text.
## Score: N/A
3. Text Faithfulness:
## Justification: The apple is green.
## Score: 1.5
# Summary: Wrong colour.

# User Request Refinement:
## Refinement Comments: Repeat the colour.
## Refined Request: A bright red apple, clearly red, on a white table.
"""

QUOTED_HEADING = """# User Request Analysis
A poster that says OPEN.
# Detailed Judgement
1. Text Faithfulness:
## Justification: The poster is there. I will judge the lettering under "Text Rendering:" below, and the Score: of the layout is separate.
## Score: 3.0
2. Physical and Visual Quality:
## Justification: Fine.
## Score: 3.5
3. Text Rendering:
## Justification: OPEN is spelled OPNE.
## Score: 1.5
# Summary: Spelling error.

# User Request Refinement:
## Refinement Comments: Spell the word out letter by letter.
## Refined Request: A poster with the word "OPEN" (O-P-E-N) in large letters.
"""

TRUNCATED_LAST_DIMENSION = """# User Request Analysis
A city at night.
# Detailed Judgement
1. Text Faithfulness:
## Justification: A city at night with lit windows.
## Score: 3.5
2. Physical and Visual Quality:
## Justification: Good lighting, a few melted buildings.
## Score: 3.0
3. Text Rendering:
## Justification: No text was asked for, so this dim"""

TRUNCATED_REFINEMENT = T2I_OK.split("# User Request Refinement:")[0] + "# User Request Refinement:\n## Refinement Comm"

MULTILINE_REFINED = T2I_OK.replace(
    '## Refined Request: A watercolor painting of a tall, straight lighthouse on a high cliff at sunset, '
    'with the word "HOPE" in clean block letters on the tower.',
    '## Refined Request:\nA watercolor painting of a tall, straight lighthouse\non a high cliff at sunset,\n'
    'with the word "HOPE" in clean block letters on the tower.',
)

MISSING_HASHES = """User Request Analysis
A blue bird on a branch.
Detailed Judgement
1. Text Faithfulness:
Justification: Blue bird on a branch.
Score: 4.0
2. Physical and Visual Quality:
Justification: Feathers look natural.
Score: 3.5
3. Text Rendering:
Justification: No text.
Score: N/A
Summary: Very good.

User Request Refinement:
Refinement Comments: None needed.
Refined Request: A blue bird perched on a branch, morning light.
"""

RENUMBERED = T2I_OK.replace("1. Text Faithfulness:", "### Text Faithfulness").replace(
    "2. Physical and Visual Quality:", "5) Physical and Visual Quality").replace(
    "3. Text Rendering:", "- Text Rendering:")

GARBAGE = "I cannot evaluate this image. Here is a poem instead: roses are red."

PAIRWISE_T2I = """# User Request Analysis
The user wants three red circles on a white background, drawn flat.
# Detailed Judgement
1. Text Faithfulness:
## Justification: Image A shows three red circles; Image B shows two.
## Score A: 4.0
## Score B: 2.0
## Winner: Image A
2. Physical and Visual Quality:
## Justification: Both are clean vector drawings.
## Score A: 3.5
## Score B: 3.5
## Winner: It's a tie
3. Text Rendering:
## Justification: No text requested.
## Score A: N/A
## Score B: N/A
## Winner: It's a tie
# Summary: Image A matches the count.
"""

PAIRWISE_EDIT = """# User Request Analysis
The user wants the sky turned purple and everything else left as it was.
# Detailed Judgement
1. Text Faithfulness:
## Justification: Both make the sky purple.
## Score A: 3.5
## Score B: 3.5
## Winner: It's a tie
2. Image Faithfulness:
## Justification: Image B changed the building's colour too.
## Score A: 4.0
## Score B: 2.5
## Winner: Image A
3. Physical and Visual Quality:
## Justification: Image A has a halo around the roof.
## Score A: 3.0
## Score B: 3.5
## Winner: Image B
4. Text Rendering:
## Justification: No text.
## Score A: N/A
## Score B: N/A
## Winner: It's a tie
# Summary: Image A preserves more.
"""
