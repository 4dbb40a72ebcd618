"""Common concrete object nouns, for the anonymous-caption checker (:mod:`.anonymity`).

An anonymous caption states a relational logic with ``{Placeholders}``; a concrete noun such as
"apple" or "bench" outside a placeholder usually means a detail of one member image leaked into
the caption. The list is hand-written and deliberately conservative: only words that almost always
name a concrete, depictable thing. Left out on purpose, because captions use them for structure or
as abstractions (flagging them would be noise): shapes and diagram parts (circle, arrow, line,
grid, frame, panel), media (photo, drawing, painting, sculpture), materials (wood, glass, paper,
metal), generic people words (person, people, figure, individual, human), body parts (often the
structure itself: "covering the eyes"), settings (room, street, landscape, sky, sea) and words with
a common non-object sense (key, note, stage, plant, spring, match, watch, seal, saw, can, tie, bow,
ring, chain, model, scale, light, wave, fly, star, map, stamp, plane, shell, pie, iron, palm, uniform, mirror).

Words are singular and lower case; the checker folds simple plurals ("apples", "benches",
"berries", "knives") and a few irregular ones ("mice", "geese", "children") onto these.
"""

from __future__ import annotations

_ANIMALS = """
cat kitten dog puppy horse pony cow bull calf ox pig sheep lamb goat donkey chicken hen rooster
chick duck duckling goose swan turkey bird parrot owl eagle hawk falcon pigeon dove crow raven
sparrow robin penguin flamingo peacock ostrich hummingbird woodpecker pelican seagull fish
goldfish shark whale dolphin octopus squid jellyfish starfish crab lobster shrimp oyster clam
frog toad turtle tortoise snake lizard crocodile alligator dinosaur lion tiger leopard cheetah
jaguar panther bear panda wolf fox deer moose reindeer elk rabbit bunny hare squirrel chipmunk
mouse rat hamster hedgehog beaver otter raccoon skunk bat monkey gorilla chimpanzee orangutan
elephant giraffe zebra rhino rhinoceros hippo hippopotamus camel llama alpaca kangaroo koala
sloth bee bumblebee wasp butterfly moth caterpillar ant beetle ladybug ladybird spider scorpion
snail slug worm mosquito dragonfly grasshopper 
"""

_FOOD_AND_PLANTS = """
apple banana pear grape strawberry cherry lemon lime peach plum apricot watermelon melon
pineapple mango kiwi coconut avocado fig pomegranate blueberry raspberry blackberry berry
tomato potato carrot onion garlic cucumber broccoli cauliflower lettuce cabbage spinach corn
pumpkin eggplant zucchini mushroom bean pea peanut walnut almond hazelnut acorn chestnut
egg bread loaf toast baguette croissant bagel pretzel cake cupcake muffin cookie biscuit
 pizza burger hamburger hotdog sandwich taco burrito sushi dumpling noodle spaghetti pasta
rice cheese butter yogurt milk coffee tea juice wine beer soda lemonade smoothie chocolate candy
lollipop donut doughnut pancake waffle popcorn sausage bacon steak ham soup salad cereal honey
 ketchup mustard sugar cookie icecream sundae
tree oak pine cactus flower rose tulip sunflower daisy lily orchid lotus dandelion
lavender leaf grass bush shrub vine moss fern seed seedling sapling acorn pinecone
"""

_HOUSEHOLD = """
chair armchair stool bench table desk sofa couch bed pillow cushion blanket mattress lamp
lampshade chandelier clock door window shelf bookshelf cabinet cupboard drawer wardrobe
carpet rug curtain vase cup mug teacup goblet plate saucer bowl fork knife spoon chopstick
spatula ladle whisk bottle jar jug pitcher teapot kettle pot pan saucepan toaster oven stove
microwave fridge refrigerator freezer sink faucet bathtub shower toilet towel soap sponge
toothbrush toothpaste comb hairbrush razor umbrella bag handbag backpack suitcase wallet purse
basket bucket box crate barrel candle lantern flashlight lightbulb bulb battery plug socket
broom mop ladder hanger 
"""

_OBJECTS = """
book notebook magazine newspaper pencil pen crayon eraser scissors envelope stapler
calculator camera phone smartphone telephone laptop computer keyboard tablet television tv
radio headphone headphones earbud microphone guitar piano violin cello drum trumpet
saxophone flute harp accordion ukulele banjo xylophone bell whistle balloon ball kite doll
teddy toy yoyo dice domino skateboard surfboard snowboard ski racket racquet helmet trophy
medal coin banknote wallet gift ribbon candle flag globe compass telescope microscope binoculars
hammer screwdriver wrench pliers axe shovel spade rake hoe wheelbarrow screw bolt nail
rope needle sword shield gun rifle pistol cannon bomb arrowhead spear robot puppet mask crown
tiara wand broomstick cigarette cigar 
glasses sunglasses spectacles hat cap beanie helmet hood shoe boot sneaker sandal slipper sock
shirt tshirt blouse dress skirt jacket coat sweater hoodie scarf glove mitten belt bowtie
jeans trousers pants shorts gown veil tuxedo suit apron bikini swimsuit pajamas
necklace earring bracelet brooch jewel diamond pearl wristwatch
"""

_VEHICLES_BUILDINGS_NATURE = """
car truck lorry bus bicycle bike motorcycle motorbike scooter train locomotive tram subway
airplane aeroplane jet helicopter airship balloon boat ship yacht sailboat canoe kayak
submarine ferry rocket spaceship taxi van jeep tractor ambulance firetruck wagon cart carriage
sled sleigh wheel tire tyre
house cottage cabin hut barn tent igloo castle palace church cathedral temple mosque tower
skyscraper lighthouse windmill bridge fountain statue monument pyramid chimney fence gate
roof staircase seesaw mailbox bench streetlight
mountain volcano river waterfall lake pond island beach desert forest cloud rainbow moon sun
snowman snowflake icicle iceberg rock pebble boulder seashell feather nest 
man woman boy girl baby child toddler kid bride groom king queen prince princess knight
soldier doctor nurse chef clown pirate astronaut firefighter policeman cowboy wizard witch
"""

# Words that appear twice across categories collapse in the set; that is fine.
OBJECT_NOUNS: frozenset[str] = frozenset(
  (_ANIMALS + _FOOD_AND_PLANTS + _HOUSEHOLD + _OBJECTS + _VEHICLES_BUILDINGS_NATURE).split()
)
