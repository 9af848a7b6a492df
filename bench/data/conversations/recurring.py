"""Hand-written facts for the development set's second style: recurring topics (see README.md).

A topic (restaurants, trips, flats viewed...) belongs to one speaker ("{me}"; the other is "{you}") and comes
back ``instances`` times with other specifics: three restaurants, three trips, three flats. Every instance
fills the topic's slots with values of its own (drawn without repeats), so the instances' turns share the
topic's meaning and most of its words and differ in names, places and numbers. ``beats`` are each
instance's evidence turns (2 per instance, in different sessions, each with several phrasings);
``reactions`` are the other speaker's answers; ``chatter`` are turns on the topic that name nothing
specific and answer no question (either speaker says them, in any session); ``mentions`` name an
instance's specifics and answer nothing about it (its owner says them, in a session of their own).

``questions``: asked per instance, (category, beats needed, phrasings, answer), naming that instance's
specifics as a person would ("What did Marco think of Nonna Rosa's?"). ``compare``: asked once per topic
about instances 0 and 1 (slots suffixed ``0`` and ``1``), needing beat ``beat`` of both. Categories as in
``storylines.py`` (single-hop, temporal, multi-hop); this style has no paraphrased questions: its
questions name the thing asked about.
"""

from __future__ import annotations

from typing import Any

Topic = dict[str, Any]

TOPICS: list[Topic] = [
    {
        "key": "restaurants",
        "slots": {
            "place": [
                "Nonna Rosa's",
                "the Saffron Lantern",
                "Kobe Alley",
                "Casa Brava",
                "the Olive Yard",
                "Pho Minh",
                "Le Petit Gris",
                "the Copper Wok",
            ],
            "dish": [
                "cacio e pepe",
                "lamb tagine",
                "wagyu skewers",
                "patatas bravas",
                "grilled octopus",
                "beef pho",
                "duck confit",
                "salt and pepper squid",
            ],
            "verdict": [
                "best meal of the year, going back for sure",
                "overpriced and the service was slow",
                "fine but nothing special",
                "amazing food, terrible acoustics",
                "tiny portions, left hungry",
                "cheap and genuinely brilliant",
            ],
        },
        "beats": [
            [
                "We booked a table at {place} for Friday, I've heard good things.",
                "Finally got a reservation at {place} this weekend.",
                "Someone at work swears by {place}, so we're trying it on Saturday.",
            ],
            [
                "So {place}: I had the {dish}. Honestly, {verdict}.",
                "Verdict on {place}? The {dish} was the highlight, but overall {verdict}.",
                "Went to {place} last night and ordered the {dish}. My take: {verdict}.",
            ],
        ],
        "reactions": ["Ooh, report back!", "I've walked past it a hundred times.", "Good to know, thanks."],
        "mentions": [
            "Walked past {place} again, the queue was out the door.",
            "My cousin says {place} changed chefs recently.",
        ],
        "chatter": [
            "We should try somewhere new for dinner, I'm bored of our usual places.",
            "I've eaten out way too much this month, my bank account is crying.",
            "Do you ever order the same thing every time? I always do.",
            "Restaurants here close their kitchens so early, it's annoying.",
            "I think tipping culture has got out of hand lately.",
            "I'd rather have a good dinner out than a new pair of shoes.",
        ],
        "questions": [
            ("single-hop", [1], ["What did {me} think of {place}?", "Would {me} go back to {place}?"], "{verdict}"),
            ("single-hop", [1], ["What did {me} order at {place}?"], "{dish}"),
            ("temporal", [1], ["When did {me} eat at {place}?"], "{date1}"),
        ],
        "compare": [
            (
                "multi-hop",
                1,
                ["Which did {me} like better, {place0} or {place1}?"],
                "{place0}: {verdict0}; {place1}: {verdict1}",
            )
        ],
    },
    {
        "key": "trips",
        "slots": {
            "city": ["Porto", "Kraków", "Ljubljana", "Seville", "Tallinn", "Bologna", "Ghent", "Split"],
            "hotel": [
                "the Hotel Aurora",
                "a tiny Airbnb above a bakery",
                "the Grand Meridian",
                "a hostel called Bunk & Brew",
                "a converted monastery",
                "the Riverside Inn",
            ],
            "highlight": [
                "a sunset boat tour",
                "the food market on Saturday",
                "a day hike up the hill",
                "a cooking class",
                "the old town at night",
                "a wine cellar tour",
            ],
            "nights": ["three", "four", "five", "six", "seven"],
        },
        "beats": [
            [
                "Booked flights to {city}! {nights} nights, staying at {hotel}.",
                "It's happening: {city} next month, {nights} nights at {hotel}.",
                "Just paid for {city}, {nights} nights. We're in {hotel}.",
            ],
            [
                "Back from {city}. The best bit was {highlight}, I'd go again tomorrow.",
                "{city} was lovely, {highlight} was the highlight for me.",
                "Home again. In {city} the thing I'll remember is {highlight}.",
            ],
        ],
        "reactions": ["Jealous!", "Send pictures!", "Sounds like a proper break."],
        "mentions": [
            "Still can't decide what to pack for {city}.",
            "A colleague grew up near {city}, she gave me a list.",
        ],
        "chatter": [
            "I need a holiday so badly, even a long weekend would do.",
            "Airport security queues are the worst part of any trip.",
            "I always overpack and then wear the same two shirts.",
            "Do you prefer beach holidays or city breaks?",
            "My suitcase wheel broke again, I need a new one.",
            "Travel insurance is such a racket but I always buy it.",
        ],
        "questions": [
            (
                "single-hop",
                [0],
                ["Where did {me} stay in {city}?", "How many nights was {me}'s trip to {city}?"],
                "{hotel}, {nights} nights",
            ),
            ("single-hop", [1], ["What was the highlight of {me}'s trip to {city}?"], "{highlight}"),
            ("temporal", [1], ["When did {me} get back from {city}?"], "{date1}"),
            (
                "multi-hop",
                [0, 1],
                ["Where did {me} stay in {city}, and what did they enjoy most there?"],
                "{hotel}; {highlight}",
            ),
        ],
        "compare": [
            (
                "multi-hop",
                0,
                ["Which trip was longer for {me}, {city0} or {city1}?"],
                "{city0}: {nights0} nights; {city1}: {nights1} nights",
            )
        ],
    },
    {
        "key": "offers",
        "slots": {
            "company": [
                "Halden Robotics",
                "Northwind Logistics",
                "Brightwater Health",
                "Quillon Games",
                "Tessaro Bank",
                "Fennic Labs",
                "Orla Energy",
                "Marrow & Pike",
            ],
            "salary": ["62,000", "71,500", "58,000", "80,000", "67,000", "74,000"],
            "perk": [
                "four days a week in the office",
                "fully remote",
                "a company car",
                "a big training budget",
                "a share scheme",
                "a 9-day fortnight",
            ],
        },
        "beats": [
            [
                "{company} came back with an offer: {salary} a year.",
                "Got the offer email from {company} today, {salary} base.",
                "{company} offered me the job! {salary}, which is more than I expected.",
            ],
            [
                "Read the {company} contract properly, the catch is {perk}.",
                "The {company} package comes with {perk}, which matters more than I thought.",
                "Asked {company} about the details: {perk}.",
            ],
        ],
        "reactions": ["Nice, that's a decent number.", "What does your gut say?", "Take your time deciding."],
        "mentions": [
            "HR at {company} keep sending me forms to fill in.",
            "Looked up {company} on Glassdoor last night, mixed reviews.",
        ],
        "chatter": [
            "Negotiating salary makes me so uncomfortable.",
            "I hate how long companies take to get back to you.",
            "Everyone says never take the first offer, but I'm not brave.",
            "I've filled in so many application forms I dream about them.",
            "My current job isn't bad, that's what makes deciding hard.",
            "Recruiters always ask for your current salary, it's so awkward.",
        ],
        "questions": [
            ("single-hop", [0], ["How much did {company} offer {me}?"], "{salary}"),
            (
                "single-hop",
                [1],
                ["What's the catch with the {company} job?", "What perk came with the {company} offer?"],
                "{perk}",
            ),
            ("temporal", [0], ["When did {me} get the offer from {company}?"], "{date0}"),
        ],
        "compare": [
            (
                "multi-hop",
                0,
                ["Which offer paid more, {company0} or {company1}?"],
                "{company0}: {salary0}; {company1}: {salary1}",
            )
        ],
    },
    {
        "key": "flats",
        "slots": {
            "street": [
                "Calder Street",
                "Wren Road",
                "Ashby Lane",
                "Marlowe Terrace",
                "Kestrel Close",
                "Dunmore Avenue",
                "Peel Street",
                "Orchard Row",
            ],
            "rent": ["950", "1,100", "1,250", "875", "1,400", "1,020"],
            "problem": [
                "damp in the bathroom",
                "no natural light in the bedroom",
                "a landlord who lives upstairs",
                "a forty-minute commute",
                "a tiny kitchen with no oven",
                "noisy neighbours through the wall",
            ],
        },
        "beats": [
            [
                "Viewed a flat on {street} today, {rent} a month.",
                "The {street} flat is {rent} a month, two bedrooms.",
                "Went to see a place on {street}. Asking {rent} a month.",
            ],
            [
                "Thinking about {street} again, the problem is {problem}.",
                "Second viewing at {street}: {problem}, sadly.",
                "The agent for {street} called back. I'm hesitating because of {problem}.",
            ],
        ],
        "reactions": [
            "Rent is insane right now.",
            "Hmm, that could be a dealbreaker.",
            "Keep looking, something will come up.",
        ],
        "mentions": [
            "Cycled down {street} on the way home, it's a nice area.",
            "There's a bakery at the end of {street}, which is a plus.",
        ],
        "chatter": [
            "Flat hunting is the most depressing hobby in the world.",
            "Every listing says 'cosy', which means tiny.",
            "Agents want a deposit before you've even seen the place.",
            "I'd give anything for a garden, even a small one.",
            "Moving boxes are stacked in my hallway already, just in case.",
            "I spend my evenings refreshing property websites.",
        ],
        "questions": [
            ("single-hop", [0], ["How much is the rent for the flat on {street}?"], "{rent}"),
            ("single-hop", [1], ["What was wrong with the flat on {street}?"], "{problem}"),
            ("temporal", [0], ["When did {me} first view the {street} flat?"], "{date0}"),
            ("multi-hop", [0, 1], ["What rent is the {street} flat, and what was its drawback?"], "{rent}; {problem}"),
        ],
        "compare": [
            (
                "multi-hop",
                0,
                ["Which flat was cheaper, the one on {street0} or on {street1}?"],
                "{street0}: {rent0}; {street1}: {rent1}",
            )
        ],
    },
    {
        "key": "books",
        "slots": {
            "title": [
                "The Salt Archive",
                "Winter at Hollow Farm",
                "A Map of Small Fires",
                "The Glass Orchard",
                "Nine Quiet Rivers",
                "The Cartographer's Daughter",
                "Blue Hour Motel",
                "Ironwood",
            ],
            "author": ["Maren Holt", "J. D. Okafor", "Lucía Serrat", "Tobias Wren", "Ama Boateng", "Ilse Varga"],
            "verdict": [
                "couldn't put it down",
                "gave up halfway, too slow",
                "the ending ruined it",
                "beautiful writing but no plot",
                "cried on the train",
                "already lent it to my mum",
            ],
        },
        "beats": [
            [
                "Started {title} by {author} last night.",
                "My book club picked {title}, it's by {author}.",
                "Picked up {title} at the library, {author} wrote it.",
            ],
            [
                "Finished {title}. Honestly, {verdict}.",
                "Done with {title}: {verdict}.",
                "Okay, {title} verdict: {verdict}.",
            ],
        ],
        "reactions": ["Is it any good so far?", "Add it to my list.", "Ha, fair enough."],
        "mentions": [
            "Saw {title} in the window of every bookshop in town.",
            "Apparently they're making {title} into a film.",
        ],
        "chatter": [
            "I used to read so much more before I had a phone.",
            "My to-read pile is taller than I am.",
            "Do you read on a Kindle or paper?",
            "I only ever read on holiday, which is sad.",
            "Audiobooks count as reading, fight me.",
            "I can't read on buses, I get travel sick.",
        ],
        "questions": [
            ("single-hop", [0], ["Who wrote {title}?"], "{author}"),
            ("single-hop", [1], ["What did {me} think of {title}?", "Did {me} like {title}?"], "{verdict}"),
            ("temporal", [1], ["When did {me} finish {title}?"], "{date1}"),
        ],
        "compare": [
            (
                "multi-hop",
                1,
                ["Which did {me} enjoy more, {title0} or {title1}?"],
                "{title0}: {verdict0}; {title1}: {verdict1}",
            )
        ],
    },
    {
        "key": "gigs",
        "slots": {
            "band": [
                "The Velvet Static",
                "Moth Parade",
                "Juniper Skies",
                "Kōtuku",
                "The Lowland Hum",
                "Saint Marrow",
                "Neon Harbour",
                "Ada & the Foxes",
            ],
            "venue": [
                "the Roundhouse",
                "a tiny pub basement",
                "the Albert Hall",
                "an old church",
                "the Corn Exchange",
                "a festival tent",
            ],
            "moment": [
                "they played the new album front to back",
                "the singer crowd-surfed",
                "the power cut out mid-song",
                "they did a forty-minute encore",
                "I got the setlist from the stage",
                "it rained through the whole set",
            ],
        },
        "beats": [
            [
                "Got tickets for {band} at {venue}!",
                "{band} are playing {venue} and I'm going.",
                "Bought two tickets for {band}, it's at {venue}.",
            ],
            [
                "{band} last night: {moment}. Unreal.",
                "Saw {band} yesterday and {moment}.",
                "Still buzzing from {band}, {moment}.",
            ],
        ],
        "reactions": ["Who are you going with?", "Amazing, I love them.", "My ears are ringing just hearing about it."],
        "mentions": [
            "{band} just announced a second date, apparently.",
            "Been listening to {band} on repeat all week.",
        ],
        "chatter": [
            "Ticket fees are daylight robbery these days.",
            "I'm too old for standing gigs, my back hurts after.",
            "Live music is the only thing that gets me off the sofa.",
            "Why do all the good concerts sell out in four minutes?",
            "I always lose my voice singing along.",
            "Earplugs at gigs, yes or no?",
        ],
        "questions": [
            ("single-hop", [0], ["Where did {me} see {band}?", "Which venue were {band} playing?"], "{venue}"),
            ("single-hop", [1], ["What happened when {me} saw {band}?"], "{moment}"),
            ("temporal", [1], ["When did {me} see {band} live?"], "{date1}"),
            ("multi-hop", [0, 1], ["Where did {me} see {band}, and what was memorable about it?"], "{venue}; {moment}"),
        ],
        "compare": [("multi-hop", 0, ["Where did {me} see {band0} and {band1}?"], "{venue0}; {venue1}")],
    },
    {
        "key": "repairs",
        "slots": {
            "trade": [
                "Gareth the plumber",
                "a roofer called Deepak",
                "an electrician named Sully",
                "Joanna the joiner",
                "a boiler man called Pete",
                "a plasterer named Ruth",
            ],
            "job": [
                "the leaking shower",
                "the broken boiler",
                "the loose roof tiles",
                "the sticking back door",
                "the flickering kitchen lights",
                "the crack in the hallway ceiling",
            ],
            "cost": ["180 pounds", "320 pounds", "95 pounds", "640 pounds", "450 pounds", "1,200 pounds"],
        },
        "beats": [
            [
                "{trade} is coming Tuesday to look at {job}.",
                "Finally found someone for {job}: {trade}.",
                "Booked {trade} to sort out {job}.",
            ],
            [
                "{trade} fixed {job}, it came to {cost}.",
                "Invoice from {trade} for {job}: {cost}.",
                "{job} is done at last, {trade} charged {cost}.",
            ],
        ],
        "reactions": ["Was he any good?", "Ugh, houses are money pits.", "At least it's sorted."],
        "mentions": [
            "Still waiting on {trade} to confirm a time.",
            "My neighbour recommended {trade} as well, small world.",
        ],
        "chatter": [
            "Nobody ever turns up when they say they will.",
            "Everything in this house breaks at once.",
            "I watched three videos and still couldn't fix it myself.",
            "Getting three quotes takes forever.",
            "My landlord never fixes anything, so I pay for it myself.",
            "I should really learn some basic DIY.",
        ],
        "questions": [
            ("single-hop", [1], ["How much did {job} cost to fix?", "What did {trade} charge?"], "{cost}"),
            ("single-hop", [0], ["Who did {me} get in for {job}?"], "{trade}"),
            ("temporal", [1], ["When was {job} fixed?"], "{date1}"),
        ],
        "compare": [("multi-hop", 1, ["Which repair cost {me} more, {job0} or {job1}?"], "{cost0}; {cost1}")],
    },
    {
        "key": "gifts",
        "slots": {
            "person": ["Keira", "Ollie", "Grandma June", "Tash", "Linda", "Sami", "Uncle Bernard"],
            "gift": [
                "a pasta machine",
                "a pair of binoculars",
                "a signed football shirt",
                "a pottery class",
                "a smart speaker",
                "a framed map of their hometown",
                "a fancy gin set",
            ],
            "reaction": [
                "they cried a bit",
                "they pretended to like it",
                "they'd already got one",
                "they've used it every day since",
                "they asked for the receipt",
            ],
        },
        "beats": [
            [
                "Ordered {gift} for {person}'s birthday.",
                "Sorted {person}'s present: {gift}.",
                "I went with {gift} for {person} in the end.",
            ],
            [
                "Gave {person} the {gift} and {reaction}.",
                "{person} opened the {gift} yesterday, {reaction}.",
                "Update on the {gift}: {person} loved it, well, {reaction}.",
            ],
        ],
        "reactions": ["Good choice.", "So thoughtful.", "Ha, classic."],
        "mentions": ["{person} keeps dropping hints about presents.", "Need to wrap the thing for {person} tonight."],
        "chatter": [
            "I'm terrible at presents, I always panic-buy.",
            "Why is everyone's birthday in the same month?",
            "Gift cards feel lazy but they're so practical.",
            "I keep a list of present ideas on my phone.",
            "Wrapping paper is such a waste, I use newspaper now.",
            "I never know how much to spend on presents.",
        ],
        "questions": [
            ("single-hop", [0], ["What did {me} get {person}?"], "{gift}"),
            ("single-hop", [1], ["How did {person} react to the {gift}?"], "{reaction}"),
            ("temporal", [1], ["When did {person} open the {gift}?"], "{date1}"),
        ],
        "compare": [("multi-hop", 0, ["What presents did {me} buy for {person0} and {person1}?"], "{gift0}; {gift1}")],
    },
    {
        "key": "hikes",
        "slots": {
            "trail": [
                "the Skirrid",
                "Cat Bells",
                "the Kinder Scout loop",
                "Pen y Fan",
                "the Seven Sisters path",
                "Helvellyn",
                "the Malvern ridge",
                "Ben Ledi",
            ],
            "distance": ["eight miles", "eleven miles", "fourteen miles", "six miles", "twelve miles"],
            "incident": [
                "we got lost in the fog",
                "a sheep stole my sandwich",
                "I twisted my ankle",
                "we saw a golden eagle",
                "it hailed at the top",
                "my boots fell apart",
            ],
        },
        "beats": [
            [
                "Planning to do {trail} on Sunday, about {distance}.",
                "We're walking {trail} this weekend, {distance} round trip.",
                "Next hike: {trail}, roughly {distance}.",
            ],
            [
                "Did {trail}! {incident}.",
                "{trail} done. Best part, or worst: {incident}.",
                "Back from {trail}, knackered, and {incident}.",
            ],
        ],
        "reactions": ["Rather you than me.", "Take snacks.", "Wow, what a day."],
        "mentions": ["Checked the weather for {trail}, looks mixed.", "Bought a map of the area around {trail}."],
        "chatter": [
            "My walking boots have seen better days.",
            "I love being out in the hills, it clears my head.",
            "The weather forecast for the mountains is always wrong.",
            "I'm trying to walk every weekend this year.",
            "Blisters are the price of freedom.",
            "I need a proper waterproof jacket.",
        ],
        "questions": [
            ("single-hop", [0], ["How long is {trail}?"], "{distance}"),
            ("single-hop", [1], ["What happened on {me}'s {trail} walk?"], "{incident}"),
            ("temporal", [1], ["When did {me} walk {trail}?"], "{date1}"),
            ("multi-hop", [0, 1], ["How far was {trail}, and what happened on the walk?"], "{distance}; {incident}"),
        ],
        "compare": [("multi-hop", 0, ["Which was longer, {trail0} or {trail1}?"], "{distance0}; {distance1}")],
    },
    {
        "key": "classes",
        "slots": {
            "course": [
                "Spanish for beginners",
                "life drawing",
                "salsa",
                "pottery",
                "bouldering",
                "creative writing",
                "Italian cooking",
                "beginner guitar",
            ],
            "teacher": ["Mateo", "a retired actress called Bev", "Dr Yusuf", "Clémence", "a guy named Rowan", "Hyejin"],
            "day": [
                "Monday evenings",
                "Wednesday lunchtimes",
                "Thursday nights",
                "Saturday mornings",
                "Sunday afternoons",
            ],
        },
        "beats": [
            [
                "Signed up for {course} on {day}.",
                "I'm doing {course} now, {day} at the community centre.",
                "Enrolled in {course}, it runs {day}.",
            ],
            [
                "The {course} teacher is {teacher}, a real character.",
                "Our {course} class is run by {teacher}, who is brilliant.",
                "{course} update: {teacher} teaches it and is very strict.",
            ],
        ],
        "reactions": ["Good for you!", "I should do something like that.", "How many are in the class?"],
        "mentions": [
            "Practised for {course} on the bus, people stared.",
            "Missed {course} this week, I was exhausted.",
        ],
        "chatter": [
            "Learning something new as an adult is humbling.",
            "I keep signing up for things and then skipping them.",
            "Evening classes are a good way to meet people.",
            "I was terrible at everything at school, this feels different.",
            "Homework at my age, can you believe it.",
            "I love having something in the diary every week.",
        ],
        "questions": [
            ("single-hop", [0], ["When does {me}'s {course} class meet?"], "{day}"),
            ("single-hop", [1], ["Who teaches {me}'s {course} class?"], "{teacher}"),
            ("temporal", [0], ["When did {me} sign up for {course}?"], "{date0}"),
        ],
        "compare": [("multi-hop", 1, ["Who teaches {course0} and who teaches {course1}?"], "{teacher0}; {teacher1}")],
    },
]
