# ruff: noqa: RUF001  (non-Latin scripts are the point of these tables)
"""Per-nationality facts the generator draws from.

Names and street names come from Faker's locale data (see :mod:`userstream.source.pools`); everything here is
a small built-in table so that places are real (Faker invents cities like "New Angelicafurt" for English
locales) and formats match each country. Patterns: ``#`` is a digit, ``?`` an upper-case letter, anything
else is literal.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NAT_SPECS", "PASSWORD_WORDS", "TIMEZONES", "NatSpec"]


@dataclass(frozen=True, slots=True)
class NatSpec:
    code: str
    country: str
    faker_locales: tuple[str, ...]  # names and streets; empty -> built-in lists below
    cities: tuple[str, ...]
    states: tuple[str, ...]
    phone: tuple[str, ...]
    cell: tuple[str, ...]
    postcode: str | tuple[int, int]  # a pattern (sent as a string) or an inclusive int range (sent as int)
    id_name: str
    id_pattern: str | None  # None -> id.value is null (and id.name is "")
    titles_male: tuple[str, ...] = ("Mr",)
    titles_female: tuple[str, ...] = ("Miss", "Mrs", "Ms")
    first_male: tuple[str, ...] = ()
    first_female: tuple[str, ...] = ()
    last: tuple[str, ...] = ()
    streets: tuple[str, ...] = ()
    street_suffixes: tuple[str, ...] = ()  # streets built from last names + a suffix (Faker's are English)


def _t(text: str) -> tuple[str, ...]:
    # The tables are written as "a|b|c" to keep this file readable.
    return tuple(s.strip() for s in text.split("|") if s.strip())


_FRENCH_TITLES = {"titles_male": ("Monsieur",), "titles_female": ("Madame", "Mademoiselle")}

# One compact block per country reads better than one value per line.
# fmt: off
NAT_SPECS: dict[str, NatSpec] = {
    s.code: s
    for s in (
        NatSpec(
            "AU", "Australia", ("en_AU",),
            _t("Sydney|Melbourne|Brisbane|Perth|Adelaide|Hobart|Darwin|Canberra|Gold Coast|Newcastle|"
               "Wollongong|Geelong|Townsville|Cairns|Toowoomba|Ballarat|Bendigo|Albury|Launceston|Mackay"),
            _t("New South Wales|Victoria|Queensland|Western Australia|South Australia|Tasmania|"
               "Northern Territory|Australian Capital Territory"),
            ("0#-####-####",), ("04##-###-###",), (1000, 9999), "TFN", "#########",
        ),
        NatSpec(
            "BR", "Brazil", ("pt_BR",),
            _t("São Paulo|Rio de Janeiro|Belo Horizonte|Salvador|Fortaleza|Curitiba|Recife|Porto Alegre|"
               "Manaus|Belém|Goiânia|Campinas|São Luís|Maceió|Natal|Teresina|João Pessoa|Florianópolis|"
               "Cuiabá|Aracaju"),
            _t("São Paulo|Rio de Janeiro|Minas Gerais|Bahia|Ceará|Paraná|Pernambuco|Rio Grande do Sul|"
               "Amazonas|Pará|Goiás|Maranhão|Alagoas|Rio Grande do Norte|Piauí|Paraíba|Santa Catarina|"
               "Mato Grosso|Sergipe|Espírito Santo|Tocantins|Rondônia|Acre|Amapá|Roraima|"
               "Mato Grosso do Sul|Distrito Federal"),
            ("(##) ####-####",), ("(##) 9####-####",), (10000, 99999), "CPF", "###.###.###-##",
        ),
        NatSpec(
            "CA", "Canada", ("en_CA", "fr_CA"),
            _t("Toronto|Montréal|Vancouver|Calgary|Edmonton|Ottawa|Winnipeg|Québec|Hamilton|Kitchener|"
               "London|Victoria|Halifax|Oshawa|Windsor|Saskatoon|Regina|St. John's|Kelowna|Barrie"),
            _t("Ontario|Québec|British Columbia|Alberta|Manitoba|Saskatchewan|Nova Scotia|New Brunswick|"
               "Newfoundland and Labrador|Prince Edward Island|Northwest Territories|Yukon|Nunavut"),
            ("###-###-####",), ("###-###-####",), "?#? #?#", "SIN", "### ### ###",
        ),
        NatSpec(
            "CH", "Switzerland", ("de_CH", "fr_CH"),
            _t("Zürich|Genève|Basel|Lausanne|Bern|Winterthur|Luzern|St. Gallen|Lugano|Biel/Bienne|Thun|"
               "Köniz|La Chaux-de-Fonds|Fribourg|Schaffhausen|Chur|Neuchâtel|Vernier|Sion|Uster"),
            _t("Zürich|Bern|Luzern|Uri|Schwyz|Obwalden|Nidwalden|Glarus|Zug|Fribourg|Solothurn|Basel-Stadt|"
               "Basel-Landschaft|Schaffhausen|Appenzell Ausserrhoden|Appenzell Innerrhoden|St. Gallen|"
               "Graubünden|Aargau|Thurgau|Ticino|Vaud|Valais|Neuchâtel|Genève|Jura"),
            ("0## ### ## ##",), ("07# ### ## ##",), (1000, 9999), "AVS", "756.####.####.##",
            **_FRENCH_TITLES,
        ),
        NatSpec(
            "DE", "Germany", ("de_DE",),
            _t("Berlin|Hamburg|München|Köln|Frankfurt am Main|Stuttgart|Düsseldorf|Leipzig|Dortmund|Essen|"
               "Bremen|Dresden|Hannover|Nürnberg|Duisburg|Bochum|Wuppertal|Bielefeld|Bonn|Münster"),
            _t("Baden-Württemberg|Bayern|Berlin|Brandenburg|Bremen|Hamburg|Hessen|Mecklenburg-Vorpommern|"
               "Niedersachsen|Nordrhein-Westfalen|Rheinland-Pfalz|Saarland|Sachsen|Sachsen-Anhalt|"
               "Schleswig-Holstein|Thüringen"),
            ("0###-#######",), ("017#-#######",), (10000, 99999), "SVNR", "## ###### ? ###",
        ),
        NatSpec(
            "DK", "Denmark", ("da_DK",),
            _t("København|Aarhus|Odense|Aalborg|Esbjerg|Randers|Kolding|Horsens|Vejle|Roskilde|Herning|"
               "Helsingør|Silkeborg|Næstved|Fredericia|Viborg|Køge|Holstebro|Taastrup|Slagelse"),
            _t("Hovedstaden|Sjælland|Syddanmark|Midtjylland|Nordjylland"),
            ("########",), ("## ## ## ##",), (1000, 9999), "CPR", "######-####",
        ),
        NatSpec(
            "ES", "Spain", ("es_ES",),
            _t("Madrid|Barcelona|Valencia|Sevilla|Zaragoza|Málaga|Murcia|Palma de Mallorca|"
               "Las Palmas de Gran Canaria|Bilbao|Alicante|Córdoba|Valladolid|Vigo|Gijón|Granada|Vitoria|"
               "A Coruña|Elche|Oviedo"),
            _t("Andalucía|Aragón|Asturias|Islas Baleares|Canarias|Cantabria|Castilla y León|"
               "Castilla-La Mancha|Cataluña|Comunidad Valenciana|Extremadura|Galicia|La Rioja|"
               "Comunidad de Madrid|Región de Murcia|Navarra|País Vasco|Ceuta|Melilla"),
            ("9##-###-###",), ("6##-###-###",), (10000, 99999), "DNI", "########-?",
        ),
        NatSpec(
            "FI", "Finland", ("fi_FI",),
            _t("Helsinki|Espoo|Tampere|Vantaa|Oulu|Turku|Jyväskylä|Lahti|Kuopio|Pori|Kouvola|Joensuu|"
               "Lappeenranta|Hämeenlinna|Vaasa|Seinäjoki|Rovaniemi|Mikkeli|Kotka|Salo"),
            _t("Uusimaa|Varsinais-Suomi|Satakunta|Kanta-Häme|Pirkanmaa|Päijät-Häme|Kymenlaakso|"
               "Etelä-Karjala|Etelä-Savo|Pohjois-Savo|Pohjois-Karjala|Keski-Suomi|Etelä-Pohjanmaa|"
               "Pohjanmaa|Keski-Pohjanmaa|Pohjois-Pohjanmaa|Kainuu|Lappi|Ahvenanmaa"),
            ("0#-###-###",), ("04#-###-##-##",), (10000, 99999), "HETU", "######-###?",
        ),
        NatSpec(
            "FR", "France", ("fr_FR",),
            _t("Paris|Marseille|Lyon|Toulouse|Nice|Nantes|Strasbourg|Montpellier|Bordeaux|Lille|Rennes|"
               "Reims|Le Havre|Saint-Étienne|Toulon|Grenoble|Dijon|Angers|Nîmes|Villeurbanne"),
            _t("Ain|Aisne|Allier|Ardèche|Aube|Aude|Calvados|Cantal|Charente|Corrèze|Côte-d'Or|Creuse|"
               "Dordogne|Doubs|Drôme|Eure|Finistère|Gard|Gironde|Hérault|Isère|Jura|Landes|Loire|Loiret|"
               "Lot|Marne|Mayenne|Meuse|Morbihan|Moselle|Nièvre|Nord|Oise|Orne|Paris|Rhône|Sarthe|Savoie|"
               "Somme|Tarn|Var|Vaucluse|Vendée|Vienne|Vosges|Yonne"),
            ("0#-##-##-##-##",), ("06-##-##-##-##", "07-##-##-##-##"), (10000, 99999),
            "INSEE", "# ## ## ## ### ### ##",
        ),
        NatSpec(
            "GB", "United Kingdom", ("en_GB",),
            _t("London|Birmingham|Manchester|Leeds|Glasgow|Liverpool|Bristol|Sheffield|Edinburgh|Cardiff|"
               "Leicester|Coventry|Nottingham|Newcastle upon Tyne|Belfast|Brighton and Hove|Kingston upon Hull|"
               "Plymouth|Stoke-on-Trent|Wolverhampton|Derby|Swansea|Southampton|Aberdeen|York|Oxford|Cambridge"),
            _t("Greater London|West Midlands|Greater Manchester|West Yorkshire|Merseyside|South Yorkshire|"
               "Tyne and Wear|Kent|Essex|Hampshire|Surrey|Lancashire|Devon|Norfolk|Suffolk|Cornwall|Dorset|"
               "Somerset|Cumbria|Lincolnshire|Oxfordshire|Cambridgeshire|Derbyshire|Staffordshire|"
               "Northumberland|Strathclyde|Lothian|Highlands and Islands|Gwynedd|Dyfed|Powys|County Down|"
               "County Antrim"),
            ("01### ######", "020 #### ####"), ("07### ######",), "??# #??", "NINO", "?? ## ## ## ?",
        ),
        NatSpec(
            "IE", "Ireland", ("en_IE",),
            _t("Dublin|Cork|Limerick|Galway|Waterford|Drogheda|Dundalk|Swords|Bray|Navan|Kilkenny|Ennis|"
               "Carlow|Tralee|Newbridge|Portlaoise|Balbriggan|Naas|Athlone|Mullingar|Sligo|Wexford"),
            _t("Dublin|Cork|Galway|Kerry|Limerick|Waterford|Wexford|Wicklow|Kildare|Meath|Louth|Mayo|Sligo|"
               "Donegal|Clare|Tipperary|Kilkenny|Carlow|Laois|Offaly|Westmeath|Longford|Roscommon|Leitrim|"
               "Cavan|Monaghan"),
            ("0#-###-####",), ("08#-###-####",), (10000, 99999), "PPS", "#######?",
        ),
        NatSpec(
            "IN", "India", ("en_IN",),
            _t("Mumbai|Delhi|Bengaluru|Hyderabad|Ahmedabad|Chennai|Kolkata|Surat|Pune|Jaipur|Lucknow|Kanpur|"
               "Nagpur|Indore|Thane|Bhopal|Visakhapatnam|Patna|Vadodara|Ludhiana|Agra|Nashik"),
            _t("Andhra Pradesh|Arunachal Pradesh|Assam|Bihar|Chhattisgarh|Goa|Gujarat|Haryana|"
               "Himachal Pradesh|Jharkhand|Karnataka|Kerala|Madhya Pradesh|Maharashtra|Manipur|Meghalaya|"
               "Mizoram|Nagaland|Odisha|Punjab|Rajasthan|Sikkim|Tamil Nadu|Telangana|Tripura|Uttar Pradesh|"
               "Uttarakhand|West Bengal|Delhi"),
            ("9#########", "8#########", "7#########"), ("9#########", "8#########", "6#########"),
            (100000, 999999), "UIDAI", "############",
        ),
        NatSpec(
            "IR", "Iran", ("fa_IR",),
            _t("تهران|مشهد|اصفهان|کرج|شیراز|تبریز|قم|اهواز|کرمانشاه|ارومیه|رشت|زاهدان|همدان|کرمان|یزد|"
               "اردبیل|بندرعباس|اراک|زنجان|سنندج|قزوین|گرگان|ساری"),
            _t("تهران|خراسان رضوی|اصفهان|البرز|فارس|آذربایجان شرقی|قم|خوزستان|کرمانشاه|آذربایجان غربی|"
               "گیلان|سیستان و بلوچستان|همدان|کرمان|یزد|اردبیل|هرمزگان|مرکزی|زنجان|کردستان|قزوین|لرستان|"
               "گلستان|مازندران|بوشهر|ایلام|سمنان|خراسان شمالی|خراسان جنوبی"),
            ("0##-########",), ("09##-###-####",), (10000, 99999), "", None,
        ),
        NatSpec(
            "MX", "Mexico", ("es_MX",),
            _t("Ciudad de México|Guadalajara|Monterrey|Puebla|Tijuana|León|Ciudad Juárez|Zapopan|Mérida|"
               "San Luis Potosí|Aguascalientes|Hermosillo|Saltillo|Mexicali|Culiacán|Querétaro|Morelia|"
               "Chihuahua|Toluca|Cancún|Acapulco|Oaxaca"),
            _t("Aguascalientes|Baja California|Baja California Sur|Campeche|Chiapas|Chihuahua|Coahuila|"
               "Colima|Ciudad de México|Durango|Guanajuato|Guerrero|Hidalgo|Jalisco|Estado de México|"
               "Michoacán|Morelos|Nayarit|Nuevo León|Oaxaca|Puebla|Querétaro|Quintana Roo|San Luis Potosí|"
               "Sinaloa|Sonora|Tabasco|Tamaulipas|Tlaxcala|Veracruz|Yucatán|Zacatecas"),
            ("(###) ### ####",), ("(###) ### ####",), (10000, 99999), "NSS", "## ## ## #### #",
        ),
        NatSpec(
            "NL", "Netherlands", ("nl_NL",),
            _t("Amsterdam|Rotterdam|Den Haag|Utrecht|Eindhoven|Groningen|Tilburg|Almere|Breda|Nijmegen|"
               "Apeldoorn|Haarlem|Arnhem|Enschede|Amersfoort|Zaanstad|'s-Hertogenbosch|Zwolle|Leiden|"
               "Maastricht|Dordrecht|Delft"),
            _t("Groningen|Friesland|Drenthe|Overijssel|Flevoland|Gelderland|Utrecht|Noord-Holland|"
               "Zuid-Holland|Zeeland|Noord-Brabant|Limburg"),
            ("(0###) ######",), ("(06) ########",), "#### ??", "BSN", "########",
        ),
        NatSpec(
            "NO", "Norway", ("no_NO",),
            _t("Oslo|Bergen|Trondheim|Stavanger|Drammen|Fredrikstad|Kristiansand|Sandnes|Tromsø|Sarpsborg|"
               "Skien|Ålesund|Sandefjord|Haugesund|Tønsberg|Moss|Porsgrunn|Bodø|Arendal|Hamar|Larvik|Halden|"
               "Lillehammer|Molde"),
            _t("Oslo|Akershus|Østfold|Buskerud|Vestfold|Telemark|Agder|Rogaland|Vestland|Møre og Romsdal|"
               "Trøndelag|Nordland|Troms|Finnmark|Innlandet"),
            ("## ## ## ##",), ("4## ## ###", "9## ## ###"), "####", "FN", "######## ###",
        ),
        NatSpec(
            "NZ", "New Zealand", ("en_NZ",),
            _t("Auckland|Wellington|Christchurch|Hamilton|Tauranga|Napier|Dunedin|Palmerston North|Nelson|"
               "Rotorua|New Plymouth|Whangarei|Invercargill|Whanganui|Gisborne|Timaru|Blenheim|Masterton|"
               "Hastings|Porirua"),
            _t("Northland|Auckland|Waikato|Bay of Plenty|Gisborne|Hawke's Bay|Taranaki|Manawatu-Wanganui|"
               "Wellington|Tasman|Nelson|Marlborough|West Coast|Canterbury|Otago|Southland"),
            ("(###)-###-####",), ("(###)-###-####",), (1000, 9999), "", None,
        ),
        NatSpec(
            "RS", "Serbia", (),
            _t("Beograd|Novi Sad|Niš|Kragujevac|Subotica|Zrenjanin|Pančevo|Čačak|Kraljevo|Novi Pazar|"
               "Smederevo|Leskovac|Valjevo|Kruševac|Vranje|Šabac|Užice|Sombor|Požarevac|Pirot|Zaječar|Kikinda|"
               "Sremska Mitrovica|Jagodina"),
            _t("Beogradski|Južnobački|Nišavski|Šumadijski|Severnobački|Srednjebanatski|Južnobanatski|"
               "Moravički|Raški|Podunavski|Jablanički|Kolubarski|Rasinski|Pčinjski|Mačvanski|Zlatiborski|"
               "Zapadnobački|Braničevski|Pirotski|Zaječarski|Severnobanatski|Sremski|Pomoravski|Borski|Toplički"),
            ("0##-####-###",), ("06#-####-###",), (10000, 99999), "SID", "#########",
            first_male=_t(
                "Aleksandar|Nikola|Stefan|Luka|Marko|Lazar|Nemanja|Filip|Miloš|Đorđe|Dušan|Vuk|Uroš|Milan|"
                "Dragan|Zoran|Nenad|Dejan|Ivan|Bojan|Vladimir|Petar|Jovan|Srđan|Goran|Predrag|Branko|Miroslav|"
                "Radovan|Živko|Velimir|Bogdan|Mihajlo|Vukašin|Andrija|Ognjen|Strahinja|Dimitrije|Veljko|Tadija"
            ),
            first_female=_t(
                "Milica|Jelena|Ana|Jovana|Marija|Teodora|Sara|Katarina|Anđela|Tijana|Ivana|Dragana|Snežana|"
                "Mirjana|Gordana|Vesna|Jasmina|Tamara|Nevena|Nataša|Biljana|Sanja|Ljiljana|Danica|Zorica|"
                "Olivera|Mila|Dunja|Iva|Sofija|Kristina|Aleksandra|Bojana|Slađana|Radmila|Vera|Nada|Branka|"
                "Ksenija|Jelisaveta"
            ),
            last=_t(
                "Jovanović|Petrović|Nikolić|Marković|Đorđević|Stojanović|Ilić|Stanković|Pavlović|Milošević|"
                "Popović|Đurić|Kostić|Todorović|Lukić|Obradović|Savić|Ristić|Mitrović|Živković|Simić|Lazić|"
                "Marjanović|Radović|Tomić|Stevanović|Janković|Filipović|Ivanović|Milovanović|Vasić|Kovačević|"
                "Novaković|Mladenović|Petković|Pešić|Krstić|Milić|Radosavljević|Stefanović"
            ),
            streets=_t(
                "Kneza Miloša|Bulevar oslobođenja|Cara Dušana|Njegoševa|Vojvode Stepe|Karađorđeva|Nemanjina|"
                "Svetogorska|Takovska|Kralja Petra|Makedonska|Balkanska|Dositejeva|Gospodar Jevremova|Resavska|"
                "Krunska|Zmaj Jovina|Bulevar kralja Aleksandra|Vojvode Mišića|Hilandarska|Cvijićeva|Pop Lukina|"
                "Brankova|Kosovska|Jovana Cvijića|Mihajla Pupina|Nikole Tesle|Vuka Karadžića|Svetog Save|"
                "Stevana Sremca"
            ),
        ),
        NatSpec(
            "TR", "Turkey", ("tr_TR",),
            _t("İstanbul|Ankara|İzmir|Bursa|Antalya|Adana|Konya|Gaziantep|Şanlıurfa|Kocaeli|Mersin|"
               "Diyarbakır|Hatay|Manisa|Kayseri|Samsun|Balıkesir|Kahramanmaraş|Van|Aydın|Denizli|Sakarya|"
               "Tekirdağ|Muğla|Eskişehir|Trabzon"),
            _t("İstanbul|Ankara|İzmir|Bursa|Antalya|Adana|Konya|Gaziantep|Şanlıurfa|Kocaeli|Mersin|"
               "Diyarbakır|Hatay|Manisa|Kayseri|Samsun|Balıkesir|Kahramanmaraş|Van|Aydın|Denizli|Sakarya|"
               "Tekirdağ|Muğla|Eskişehir|Trabzon|Ordu|Malatya|Erzurum|Sivas"),
            ("(###)-###-####",), ("(5##)-###-####",), (10000, 99999), "", None,
            street_suffixes=("Sk", "Cd"),
        ),
        NatSpec(
            "UA", "Ukraine", ("uk_UA",),
            _t("Київ|Харків|Одеса|Дніпро|Запоріжжя|Львів|Кривий Ріг|Миколаїв|Вінниця|Херсон|Полтава|"
               "Чернігів|Черкаси|Житомир|Суми|Хмельницький|Чернівці|Рівне|Івано-Франківськ|Тернопіль|Луцьк|"
               "Ужгород"),
            _t("Київська|Харківська|Одеська|Дніпропетровська|Донецька|Запорізька|Львівська|Миколаївська|"
               "Вінницька|Херсонська|Полтавська|Чернігівська|Черкаська|Житомирська|Сумська|Хмельницька|"
               "Чернівецька|Рівненська|Івано-Франківська|Тернопільська|Волинська|Закарпатська|"
               "Кіровоградська|Луганська"),
            ("(0##) ###-##-##",), ("(09#) ###-##-##",), (10000, 99999), "", None,
        ),
        NatSpec(
            "US", "United States", ("en_US",),
            _t("New York|Los Angeles|Chicago|Houston|Phoenix|Philadelphia|San Antonio|San Diego|Dallas|"
               "San Jose|Austin|Jacksonville|Fort Worth|Columbus|Charlotte|Indianapolis|Seattle|Denver|Boston|"
               "Nashville|Portland|Las Vegas|Detroit|Memphis|Louisville|Baltimore|Milwaukee|Albuquerque|"
               "Tucson|Fresno|Sacramento|Mesa|Atlanta|Omaha|Raleigh|Miami|Tulsa|Cleveland|Wichita|Arlington"),
            _t("Alabama|Alaska|Arizona|Arkansas|California|Colorado|Connecticut|Delaware|Florida|Georgia|"
               "Hawaii|Idaho|Illinois|Indiana|Iowa|Kansas|Kentucky|Louisiana|Maine|Maryland|Massachusetts|"
               "Michigan|Minnesota|Mississippi|Missouri|Montana|Nebraska|Nevada|New Hampshire|New Jersey|"
               "New Mexico|New York|North Carolina|North Dakota|Ohio|Oklahoma|Oregon|Pennsylvania|"
               "Rhode Island|South Carolina|South Dakota|Tennessee|Texas|Utah|Vermont|Virginia|Washington|"
               "West Virginia|Wisconsin|Wyoming"),
            ("(###) ###-####",), ("(###) ###-####",), (10000, 99999), "SSN", "###-##-####",
        ),
    )
}

# fmt: on

#: (offset, description) pairs; the API picks a timezone independently of the nationality.
TIMEZONES: tuple[tuple[str, str], ...] = (
    ("-12:00", "Eniwetok, Kwajalein"),
    ("-11:00", "Midway Island, Samoa"),
    ("-10:00", "Hawaii"),
    ("-9:00", "Alaska"),
    ("-8:00", "Pacific Time (US & Canada)"),
    ("-7:00", "Mountain Time (US & Canada)"),
    ("-6:00", "Central Time (US & Canada), Mexico City"),
    ("-5:00", "Eastern Time (US & Canada), Bogota, Lima"),
    ("-4:00", "Atlantic Time (Canada), Caracas, La Paz"),
    ("-3:30", "Newfoundland"),
    ("-3:00", "Brazil, Buenos Aires, Georgetown"),
    ("-2:00", "Mid-Atlantic"),
    ("-1:00", "Azores, Cape Verde Islands"),
    ("0:00", "Western Europe Time, London, Lisbon, Casablanca"),
    ("+1:00", "Brussels, Copenhagen, Madrid, Paris"),
    ("+2:00", "Kaliningrad, South Africa"),
    ("+3:00", "Baghdad, Riyadh, Moscow, St. Petersburg"),
    ("+3:30", "Tehran"),
    ("+4:00", "Abu Dhabi, Muscat, Baku, Tbilisi"),
    ("+4:30", "Kabul"),
    ("+5:00", "Ekaterinburg, Islamabad, Karachi, Tashkent"),
    ("+5:30", "Bombay, Calcutta, Madras, New Delhi"),
    ("+5:45", "Kathmandu"),
    ("+6:00", "Almaty, Dhaka, Colombo"),
    ("+7:00", "Bangkok, Hanoi, Jakarta"),
    ("+8:00", "Beijing, Perth, Singapore, Hong Kong"),
    ("+9:00", "Tokyo, Seoul, Osaka, Sapporo, Yakutsk"),
    ("+9:30", "Adelaide, Darwin"),
    ("+10:00", "Eastern Australia, Guam, Vladivostok"),
    ("+11:00", "Magadan, Solomon Islands, New Caledonia"),
    ("+12:00", "Auckland, Wellington, Fiji, Kamchatka"),
)

#: Weak, common passwords: what the API hands out when no ``password`` parameter is given.
PASSWORD_WORDS: tuple[str, ...] = _t(
    "sunshine|dragon|football|monkey|letmein|shadow|master|baseball|superman|batman|trustno1|hunter|"
    "ranger|buster|thomas|tigger|robert|soccer|jordan|harley|charlie|andrew|michelle|love|jessica|pepper|"
    "daniel|access|joshua|maggie|starwars|silver|william|dallas|yankees|hello|amanda|orange|merlin|"
    "freedom|ginger|nicole|chelsea|summer|corvette|taylor|austin|matrix|minecraft|qwerty|password|"
    "iloveyou|princess|cookie|butterfly|flower|hockey|killer|george|bandit|blue|compaq|maverick|"
    "panther|purple|scooter|phoenix|mercedes|winter|spider|blaster|peanut|coffee|cowboy|eagle|falcon|"
    "gandalf|legend|marley|pirate|rocket|snoopy|tennis|tiger|viking|wizard|zxcvbn|123456|12345678|"
    "abc123|1q2w3e|qazwsx|passw0rd|trustme|whatever|nirvana|metallica|beatles|kitten|bubbles|cheese|"
    "chicken|diamond|doctor|forever|guitar|hammer|jasmine|junior|lakers|lucky|mustang|platinum|"
    "rainbow|samsung|scorpio|sparky|stella|sunny|thunder|voodoo|yellow|zombie"
)
