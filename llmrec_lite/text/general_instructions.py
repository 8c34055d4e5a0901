"""General instruction data the project ships (LLM-CF's RecGen mixes it into the recommendation fine-tune).

The official RecGen-LLaMA mixes Alpaca-GPT4 and LIMA into its recommendation data so the fine-tuned model keeps
its general ability; neither can be downloaded here, and their licences are not ours to ship. These 48 short
instruction -> answer pairs were written for this project (facts, arithmetic, definitions, short writing,
everyday advice), each with keywords a correct answer contains. ``GENERAL_TRAIN`` (the first 32) is mixed
into the fine-tune; ``GENERAL_EVAL`` (the last 16) is never trained on: it measures general ability before
and after (perplexity of the reference answers, keyword hits of greedy answers).
"""
from __future__ import annotations

# (instruction, reference answer, keywords a correct answer contains: any one of each tuple, all tuples)
GENERAL = [
    ("What is the capital of France?", "The capital of France is Paris.", (("paris",),)),
    ("How many days are there in a week?", "There are seven days in a week.", (("seven", "7"),)),
    ("What is 12 plus 30?", "12 plus 30 is 42.", (("42",),)),
    ("Name the largest planet in the solar system.", "Jupiter is the largest planet in the solar system.",
     (("jupiter",),)),
    ("What gas do plants take in from the air to make food?",
     "Plants take in carbon dioxide from the air and use sunlight to turn it into sugar.", (("carbon dioxide", "co2"),)),
    ("Translate 'thank you' into Spanish.", "'Thank you' in Spanish is 'gracias'.", (("gracias",),)),
    ("What is the boiling point of water at sea level in degrees Celsius?",
     "At sea level water boils at 100 degrees Celsius.", (("100",),)),
    ("Who wrote the play Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet.", (("shakespeare",),)),
    ("Give a synonym for 'happy'.", "A synonym for happy is 'joyful'.", (("joyful", "glad", "cheerful", "content"),)),
    ("What is the opposite of 'cold'?", "The opposite of cold is hot.", (("hot", "warm"),)),
    ("How many legs does a spider have?", "A spider has eight legs.", (("eight", "8"),)),
    ("What is 9 times 7?", "9 times 7 is 63.", (("63",),)),
    ("Which ocean lies between Africa and Australia?", "The Indian Ocean lies between Africa and Australia.",
     (("indian",),)),
    ("What does a thermometer measure?", "A thermometer measures temperature.", (("temperature",),)),
    ("Write one sentence describing a sunny morning.",
     "The sun rose over the quiet street and warmed the cool morning air.", (("sun",),)),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au.", (("au",),)),
    ("How many minutes are there in an hour?", "There are sixty minutes in an hour.", (("sixty", "60"),)),
    ("What is the freezing point of water in degrees Celsius?", "Water freezes at 0 degrees Celsius.",
     (("0", "zero"),)),
    ("Name a primary color.", "Red is a primary color; blue and yellow are the others.", (("red", "blue", "yellow"),)),
    ("What is the tallest animal in the world?", "The giraffe is the tallest animal in the world.", (("giraffe",),)),
    ("Give one tip for sleeping better.",
     "Go to bed at the same time every night and keep screens out of the bedroom.", (("bed", "sleep", "night"),)),
    ("What is the plural of 'mouse'?", "The plural of mouse is mice.", (("mice",),)),
    ("What is 100 divided by 4?", "100 divided by 4 is 25.", (("25",),)),
    ("Which planet is known as the Red Planet?", "Mars is known as the Red Planet.", (("mars",),)),
    ("What do bees make?", "Bees make honey and wax.", (("honey",),)),
    ("What is the main language spoken in Brazil?", "The main language spoken in Brazil is Portuguese.",
     (("portuguese",),)),
    ("Explain in one sentence what a recipe is.",
     "A recipe is a list of ingredients and steps that tells you how to cook a dish.", (("ingredient", "cook", "dish", "food"),)),
    ("How many continents are there?", "There are seven continents.", (("seven", "7"),)),
    ("What is the square root of 81?", "The square root of 81 is 9.", (("9", "nine"),)),
    ("What is H2O commonly called?", "H2O is water.", (("water",),)),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa.", (("leonardo", "vinci"),)),
    ("Name the fastest land animal.", "The cheetah is the fastest land animal.", (("cheetah",),)),
    # ---- held out: never trained on ----
    ("What is the capital of Japan?", "The capital of Japan is Tokyo.", (("tokyo",),)),
    ("How many months are there in a year?", "There are twelve months in a year.", (("twelve", "12"),)),
    ("What is 15 plus 27?", "15 plus 27 is 42.", (("42",),)),
    ("Which star is at the centre of our solar system?", "The Sun is the star at the centre of our solar system.",
     (("sun",),)),
    ("What do cows drink?", "Cows drink water.", (("water",),)),
    ("Translate 'hello' into French.", "'Hello' in French is 'bonjour'.", (("bonjour",),)),
    ("Who wrote the novel 'Pride and Prejudice'?", "Jane Austen wrote Pride and Prejudice.", (("austen",),)),
    ("What is the opposite of 'up'?", "The opposite of up is down.", (("down",),)),
    ("How many sides does a triangle have?", "A triangle has three sides.", (("three", "3"),)),
    ("What is the largest ocean on Earth?", "The Pacific Ocean is the largest ocean on Earth.", (("pacific",),)),
    ("What is 6 times 8?", "6 times 8 is 48.", (("48",),)),
    ("What is the chemical symbol for iron?", "The chemical symbol for iron is Fe.", (("fe",),)),
    ("Which animal is known as the king of the jungle?", "The lion is known as the king of the jungle.",
     (("lion",),)),
    ("What instrument has 88 keys?", "The piano has 88 keys.", (("piano",),)),
    ("What is the capital of Italy?", "The capital of Italy is Rome.", (("rome",),)),
    ("How many hours are there in a day?", "There are twenty-four hours in a day.", (("24", "twenty-four", "twenty four"),)),
]
GENERAL_TRAIN = GENERAL[:32]
GENERAL_EVAL = GENERAL[32:]


def keyword_hit(answer: str, keywords) -> bool:
    """True if the answer contains one keyword of every tuple (case-insensitive; a word may take a suffix,
    "ingredient" matches "ingredients"; a number must stand alone, "7" does not match "70")."""
    import re

    text = answer.lower()

    def has(word: str) -> bool:
        end = r"(?![0-9])" if word.isdigit() else ""
        return re.search(rf"(?<![a-z0-9]){re.escape(word)}{end}", text) is not None

    return all(any(has(k) for k in group) for group in keywords)
