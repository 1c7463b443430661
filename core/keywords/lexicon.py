"""Hand-written word lists for the model-free keyword extractor (general English knowledge).

Nothing here is learned from a data set: these are closed word classes (determiners,
prepositions, pronouns, auxiliaries), common open-class words whose part of speech a suffix
rule would get wrong (verbs, adjectives, -ing nouns), and a few semantic groups that decide
how salient a word is in a picture description (colours, counts, people, relational nouns).
"""
from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --------------------------------------------------------------------------- stopwords
STOPWORDS: dict[str, frozenset[str]] = {
    "english": _words("""
arafed araffe arafe arrafed
a an the and or but nor yet so if then else than that this these those there here where when while
whilst whom who whose which what why how whatever whichever of at by for with without within about
against between among amongst into onto through throughout during before after above below to from
up down in inside out outside on off over under underneath again further once all any both each
either neither few more most less least other others another some such no not only own same too
very just also even still ever really quite rather almost s t can could will would shall should may
might must ought do does did doing done be is are was were been being am have has had having i me
my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself she
her hers herself it its itself they them their theirs themselves one ones something someone
somebody anything anyone nothing everything everyone everybody let lets 's 're 've 'd 'll 'm n't
as like via per upon toward towards across along alongside around near nearby beside besides
behind beyond past amid despite unlike until till since though although because whether whereas
now soon already always never often sometimes yes ok etc next
"""),
    "german": _words("""
der die das des dem den ein eine einer eines einem einen und oder aber doch sondern denn weil wenn
als ob dass da wo wie was wer wen wem wessen welche welcher welches dies diese dieser dieses diesem
diesen jener jene jenes mit ohne von vom zu zum zur bei beim aus auf an am im in ins unter über
uber vor hinter neben zwischen durch für fur gegen um nach seit bis ist sind war waren wird werden
wurde wurden sein hat haben hatte hatten kann können konnte muss müssen soll sollen will wollen
ich du er sie es wir ihr mich dich sich uns euch mein dein sein ihr unser euer nicht kein keine
keinen keinem keiner auch noch schon nur sehr so hier dort dann jetzt man etwas nichts alle alles
jede jeder jedes viele einige andere anderen anderer
"""),
    "french": _words("""
le la les l un une des du de d au aux et ou mais donc or ni car que qu qui quoi dont où ou ce cet
cette ces c ça cela celui celle ceux celles il elle ils elles on nous vous je j tu me m te t se s
lui leur leurs son sa ses mon ma mes ton ta tes notre nos votre vos dans sur sous avec sans pour
par en entre vers chez devant derrière derriere près pres contre est sont était étaient etait
etaient être etre a ont avait avaient avoir fait ne n pas plus très tres aussi bien tout tous toute
toutes autre autres même meme comme si y là la ici alors puis quelque quelques chaque
"""),
    "spanish": _words("""
el la los las lo un una unos unas y e o u pero sino ni que qui quien quienes cual cuales cuyo donde
cuando como de del al a en con sin por para sobre bajo entre hacia hasta desde contra tras ante es
son era eran fue fueron ser estar está esta están estan estaba estaban hay ha han había habia
tiene tienen se su sus mi mis tu tus nuestro nuestra nuestros nuestras él el ella ellos ellas yo
nosotros vosotros usted ustedes me te le les nos os no muy más mas también tambien ya aquí aqui
allí alli este esta estos estas ese esa esos esas aquel aquella otro otra otros otras todo toda
todos todas cada algún algun alguna algunos algunas mientras
"""),
}
SUPPORTED_LANGUAGES: tuple[str, ...] = tuple(STOPWORDS)

# --------------------------------------------------------------------------- closed classes
DETERMINERS = _words("""a an the this that these those some any each every another other no his
her its their our my your whose which what such both either neither all half""")
PREPOSITIONS = _words("""of at by for with without within about against between among into onto
through throughout during before after above below to from up down in inside out outside on off
over under underneath beneath across along alongside around near nearby beside besides behind
beyond past toward towards via upon amid amidst atop like than as while until""")
CONJUNCTIONS = _words("and or but nor yet so while whilst as if though although because then")
PRONOUNS = _words("""i me we us you he him she her it they them myself yourself himself herself
itself ourselves themselves one someone something somebody everyone everything nobody nothing
anyone anything who whom which what that this these those each other""")
AUXILIARIES = _words("""is are was were be been being am 's 're have has had having do does did
can could will would shall should may might must""")
# verbs that carry little picture content on their own
LIGHT_VERBS = _words("""is are was were be been being am have has had having do does did doing
get gets getting got make makes making made seem seems appear appears appearing appeared try tries
trying tried go goes going went gone come comes coming came let lets take takes taking took
""")
NUMBERS = _words("""one two three four five six seven eight nine ten eleven twelve dozen dozens
several many few couple pair lots hundreds thousands numerous multiple""")
COLOURS = _words("""black white red blue green yellow orange purple pink brown gray grey tan beige
silver gold golden blond blonde brunette dark light bright colorful colourful multicolored
multicoloured striped spotted plaid checkered camouflage maroon navy teal turquoise violet crimson
""")
# frequent adjectives (a suffix rule cannot tell these from nouns)
ADJECTIVES = _words("""young old little small big large tall short long huge tiny giant wide
narrow high low deep shallow steep open closed empty full wet dry muddy dirty clean sandy rocky
grassy snowy icy sunny cloudy foggy rainy windy busy crowded quiet calm cold hot warm cool fresh
new older younger elderly adult teenage shirtless barefoot naked bald curly straight thick thin
fat skinny heavy strong happy sad angry funny smiling serious pretty beautiful cute ugly nice fancy
good bad great other same different various many several few whole single double lone lonely
front back middle top bottom side left right upper lower outdoor indoor outdoors indoors public
professional formal casual traditional modern ancient fluffy furry shaggy hairy wooden paved
shaded shady lit dim asian african
american indian chinese japanese mexican european ethnic male female fellow first second last next
main certain particular various busy lush green distant nearby distant far close ready
""")
ADVERBS = _words("""very too also just still really quite rather almost nearly together away back
around up down out off over here there outside inside upside forward backwards backward sideways
alone again high far fast slowly quickly""")
# -ing words that are usually nouns, and -s/-ed words that are not verbs
ING_NOUNS = _words("""building buildings clothing ceiling ceilings railing railings swing swings
ring rings string strings thing things king wing wings spring springs evening morning painting
paintings wedding weddings sibling siblings ping pong pudding stocking stockings awning awnings
stuffing icing sling bling sing offspring earring earrings lightning landing opening outing
sibling ding bedding seating parking fencing flooring frosting wedding ceremony pudding shilling
viking vikings duckling ducklings darling clearing crossing crossings bowling shopping""")
# nouns that relate or quantify rather than depict: low salience on their own
RELATIONAL_NOUNS = _words("""front back side sides top bottom middle edge edges end ends part parts
area areas way direction background foreground distance view picture photo image camera shot
kind type sort lot lots number variety bunch group groups couple pair set line row rows piece
pieces bit rest center centre corner corners left right inside outside surface air thing things
something while time day today other others""")
PARTITIVES = _words("""group groups couple pair bunch lot lots number variety herd flock pack
crowd team line row set pile stack pair
photo photos picture pictures image images photograph photographs painting paintings drawing
illustration closeup close-up shot view kind type sort""")  # "a photo of a cat": the subject is "cat"
PEOPLE = _words("""man men woman women boy boys girl girls child children kid kids person people
baby babies toddler toddlers guy guys lady ladies gentleman player players""")

# --------------------------------------------------------------------------- verbs
# common base-form verbs; inflections are generated by rule, irregular forms listed below
VERB_BASES = _words("""run walk jump play sit stand lie lay ride climb swim dive surf ski skate
skateboard snowboard bike cycle hike race chase catch throw kick hit swing carry hold push pull
look watch stare gaze smile laugh talk speak sing dance eat drink cook read write paint draw fish
fly float sail row paddle drive park wait rest sleep relax lean kneel crouch squat bend reach
pose perform practice practise wear dress hug kiss fight wrestle shake clap wave point touch grab
pick lift drop fall slide roll bounce splash spray pour wash clean sweep work build fix hang
cross enter leave exit pass approach follow lead march travel wander explore search dig bite
chew lick sniff fetch herd graze tug cheer celebrate watch shop sell buy hold display feed
pet hold block tackle dribble shoot score serve bat pitch bowl swim ski skydive parachute
sunbathe lay gather stroll jog give help reach use bring bark yell shout
scream cry pray blow punch toss pedal tow haul drag stretch lounge nap doze bathe
snorkel smell taste sip bake grill photograph greet applaud
frown glance peer peek hurl defend descend slip
skid tumble plunge chat argue exercise dangle attempt prepare sprint leap hop skip spin twirl flip crawl creep shovel rake
mow plant ride steer hang swing rock balance juggle teach learn listen hear play cross
wade soak cover fill open close hide stop jog kayak canoe raft tube sled hunt attack
""")
IRREGULAR_VERBS = {
    "ran": "run", "sat": "sit", "stood": "stand", "lain": "lie", "laying": "lay", "rode": "ride",
    "ridden": "ride", "swam": "swim", "dove": "dive", "caught": "catch", "threw": "throw",
    "thrown": "throw", "held": "hold", "hung": "hang", "fell": "fall", "fallen": "fall",
    "ate": "eat", "eaten": "eat", "drank": "drink", "sang": "sing", "flew": "fly", "flown": "fly",
    "drove": "drive", "driven": "drive", "wore": "wear", "worn": "wear",
    "fought": "fight", "spoke": "speak", "led": "lead", "dug": "dig",
    "built": "build", "knelt": "kneel", "leapt": "leap", "slid": "slide", "swung": "swing",
    "spun": "spin", "taught": "teach", "heard": "hear", "hid": "hide",
    "bought": "buy", "sold": "sell", "wrote": "write", "written": "write", "drew": "draw",
    "drawn": "draw", "shook": "shake", "took": "take", "gave": "give", "seen": "see",
}

# --------------------------------------------------------------------------- salience groups
# clothing and accessories: people describe them inconsistently, so they are weak keywords
CLOTHING = _words("""shirt shirts t-shirt t-shirts tshirt jacket jackets coat coats shorts pants
trousers jeans uniform uniforms helmet helmets hat hats cap caps hood hoodie sweater sweaters
sweatshirt dress dresses skirt skirts suit suits tie vest vests top tops tank outfit outfits
costume costumes clothes clothing gear shoe shoes boot boots sneakers sandals socks glove gloves
mittens scarf scarves glasses sunglasses goggles mask masks bandana headband jersey jerseys apron
bikini swimsuit trunks wetsuit overalls pajamas robe gown sleeve sleeves collar belt backpack bag
bags purse necklace bracelet earrings beanie visor headscarf turban tuxedo leggings tights""")
BODY_PARTS = _words("""hair face mouth hand hands arm arms head heads leg legs foot feet eye eyes
ear ears nose back shoulder shoulders knee knees finger fingers body teeth tongue tail paw paws
chest lap neck lips beard""")
# hypernyms: less agreed on than the specific word another person would use
GENERIC_NOUNS = _words("""person persons individual individuals child kid kids adult adults
youngster youngsters youth animal animals creature object objects thing things item items stuff
place spot ground area game structure vehicle activity""")
# verbs that describe appearance or attention rather than the action in the picture
WEAK_VERBS = _words("""wear look watch stare gaze pose wait dress cover hold carry show smile
appear face""")
# common basic-level concrete nouns (general English vocabulary): what most people would call
# the thing, so more likely to be shared between describers than a rarer, more specific word
BASIC_NOUNS = _words("""dog dogs puppy puppies cat cats kitten horse horses pony cow cows bull
sheep goat goats pig pigs bird birds duck ducks goose geese chicken chickens fish deer bear bears
lion tiger elephant elephants monkey camel camels zebra giraffe animal fox rabbit squirrel mouse
snake frog turtle butterfly bee insect spider whale dolphin seal shark crab
man men woman women boy boys girl girls child children kid kids baby babies people person family
crowd team player players couple friends mother father dad mom son daughter brother sister
car cars truck trucks bus buses train trains boat boats ship ships plane airplane bike bikes
bicycle bicycles motorcycle motorbike scooter skateboard skateboards surfboard board boards
kayak canoe raft sled wagon cart tractor taxi van jeep helicopter
ball balls frisbee kite toy toys stick sticks rope swing slide net goal bat racket hoop
basketball football soccer baseball tennis volleyball golf hockey rugby game ramp trampoline
water snow ice grass sand mud dirt rock rocks stone stones tree trees flower flowers leaves leaf
river lake pond stream ocean sea beach shore wave waves waterfall pool fountain puddle
mountain mountains hill hills cliff field fields meadow forest woods park garden yard lawn
desert valley cave island sky sun cloud clouds rain fire smoke light
street road sidewalk path trail track bridge city town building buildings house home church
tower wall fence gate door window stairs steps roof shop store market restaurant cafe bar
stage room kitchen bed couch sofa chair chairs table bench desk floor carpet
food cake pizza bread fruit apple ice-cream drink cup glass bottle plate bowl
book paper sign flag picture camera phone computer guitar drum drums piano music
umbrella hat bag box blanket towel tent pole wheel wheels tire
playground slope trail court hoop bubble bubbles balloon balloons kite wall graffiti statue
bull
hay leaves branch branches log logs wood bush bushes plant plants pumpkin
""")
