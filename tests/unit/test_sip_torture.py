"""RFC 4475 SIP torture messages through `parse_datagram` and `SipStreamParser`.

The 49 messages are RFC 4475's own test vectors, byte for byte: the RFC publishes them
as a base64 archive (its §4), and `_ARCHIVE` below is the same files re-packed as an
xz tar (``tarfile``, USTAR, sorted names); `test_the_archive_is_rfc_4475` pins their
digest. To read one: ``python -c "from tests.unit.test_sip_torture import TORTURE;
print(TORTURE['wsinv'].decode('utf-8', 'replace'))"``.

What our parser does with each message, and why, is in `OUTCOMES`: a valid message
parses and a few of its fields are checked; an invalid one either raises `SipParseError`
(answered by `bad_request_response`, or dropped when it is a response) or parses with
the anomaly visible to the layer above, as RFC 4475 allows for that message.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile

import pytest

from realtime_voice.sip.message import (
    InvalidMessage,
    KeepAlivePong,
    SipParseError,
    SipRequest,
    SipResponse,
    SipStreamParser,
    bad_request_response,
    parse_datagram,
)
from realtime_voice.sip.uri import OtherUri, SipUri

_ARCHIVE = """
/Td6WFoAAATm1rRGAgAhARYAAAB0L+Wj4O//GVldADEYSL3tiJFAkBogZlaDjXL3Oh3Gsa81RbZx/XAqjSAX65aBvwyGcO6u
wvWSv/iUNdSQCJVo/XrR7q54rLGjO1bd2bm/rf01/Ea9NLdp8a5bw27W/j3y197LNr/CWEG7b7XgQqo1RxHqe5pP/opxROsF
4rZ1cy/bSBVv8hvZ1pe1lXBlpIC1QolIaj9pr8OR8OTDa15v0Z+dzDTIxEwCsM+zCSBOdDCFxqlg1tHVkXJvxJSxfgjmy2to
lyNjGMmTPX1prd5i18MS+hQhXQbkhbOSQR29scRZYZmfEvY9qLybKP9/53000KtakcppEp+Oq53svo6deR6+PQ6FnjKjnhZd
cl/xlCWumwz4D4xhPPb/XCFx+cxEYta3KF0SogbNCHK9IVhj97Kn/E8nKSsQLZBtFdTi1Png+qlVNTW08ooAZ350tKZliv++
4TVGt7PGDkmJ0ap1t/CB+hIDeeVM0yQ+cb8i1DsOrHUZRbqRQx6cr8x+dnXijwlOj09afi8CT0KapRGUji6gARSDXjPXZS+3
N/9UOnoiPMCy85WcE3snucP0vnJuUD8BUlbuIA+VFpusZmvDrvdL/evdeZhnxbr6zJH6/PADMMzImYLCFApBXSqrm9vgqGph
LvOvV2AchWvxOeETNWSChXzu02IAYftK1IARX62pRFBqYLI/U75Q8yzlxWbclkf6gav1LH+35hYfXIXj6JX7Ik0KbBp+9mPp
/2vX8CMPRr0KiWebVcmpwLD0Cz3Yxo7YtXWtHm5fKn4h4zRpgDY5iJyCjPhI3kD3MZj8PL9YQ3pB8jENRAQQcA0FrmVFAOAh
Q2BhDW2AY/vHN7jboCYGEjRXTWfhSNo3c1W6YQjfej6fkm6PwtveqM/dgoT08WGLrytJBRcuJUDH5MxLCJ0blogwtKluFwa5
LYpgrxcYlBFQDqlhbIirXaFjx+ZRFCcTenbNloq3t8dlAmnfSmtjVb9CgMgQIL3Zab2kO5Wsu/xtZOtcM9ZPH61CnLedZ+g8
B/qelAqHOtYilMrGc8MzoN8AcGqZXM7lH2szfFX0XjKR6g09tk5061DfnHqAwRTjrmycODXJ+q9RFn/S1NsQ7XrIJYjdBE9z
Ayo7a48tuzvdbHSjwh5hd/8hZIpQzcLFH1DLuhxyd0Vez8IgzfnAzGtjHizB5tAV1s0ZVk3q3qtKIX23vf9EtYa7gvdb3Zyw
4QrjkYpYTPj6qdsDZ759FBBURX1RSHdT9OspEmelvWmQLcf7m2eTIxVpyMb0btE1OXkoPgPvWZwkj069VlD/zON8vu0A8RTd
u7gH+6MDx4rve8hPHXbGzAhCEoQM8cDfiNpoeO3q/TctOMBeC0PTnjoLhIdkDVXLmdf07Of6DX/J8h8489LkKJl9KUJhvpSP
9sHNxizMqgdVF3LE3eRR3C+TcP7Wl/imuQgAWFKGx8+lEJd0XiJM2/FWIazeHdvftTubN5Mb7Sg3fgalgGFMwX+YCp8vjWXN
DM8C+D4q9ISeBge/OvhI/byrLwn/wo22sJ+s689b51oFNqmLFfO0n6I+pG/PwHng6tX7Kb1g8n56eSMYk+ev4UD7nlljjDh/
r28kFGYWuG+G22Se4Hpn/Td9rSf6VfobZOZHyK5sZECmghobE8SVV6uwNZLVoyT2/MFe22gIEtboXsMKlI8hn5XQ0vzaL/FJ
J+xUriuDKpd2R/JSSJ2ibyve6M+4puS7O2dqiFL+7JndwJmfjEymwo3Bc/6RSggiET8fFZmxOzJ5CDD9LL8K4UJqVr/rWQMq
pMOjU7E52yOFkHcSRIooCKtGj7b8QoIzXKse4GiaWD73/H6efbrroHNcwdL39PnFSNqjyID3DRJZUZvYGNBWX5IkokiYOGuS
inv50b/jKox6c0DBTZw0oJ+aJXEI+15tYIvGS7U/M21AERUn8iUS1C7YqdgVgmyLpjXAUrGhrVoEakMHqC1OOF0N7kJeXbJD
5J2+gai8lwrkXLbMmr0MBOq2D05oWc/ItxoyZYuf0ZtIJephTGXi/oTzQ+/H73W5nYpmPcE8d2WaxE8SiqLpdZTzZOvg0i1G
63obOm50ETCg3THYF3jzcx7opeIyJW/5EQzLioJb8RuId/TTUC7I4L0MRkqiIW6/kzfxkW5ORqgMPkUZiFZRUMTBbnqx2luv
gBe3vHilkFalzVHyRwFTnFdinvQmqL5qh7BgezEbWjwBpN3v0iCpuRjaRZOa7ay0mCe2d9+PezY5Hoxx2zUu1c56lpYeR/FY
8CzJuNsUfTLMRS6lBStV9EV+z07GQMoIgN7CdQFvrxOXMiM9Fh7GUJbMFvQIE1suy74NmuobJRtnbUn5ycdlWdGqPhwsFVAO
dJV7n6GWLcSrf8zczHVSKJGKhkc4LKfx06iNt4u1P7RaoXgIkS8JvuSOYq5jWv1b2N//nnCG1XVeRzzEX7SAJ2Ccj8K0V1HA
oqvstSTje1OfF4RD/pl721Cd/s4cfwqK5MeqH5wJAZJHzRMT6kXvlBaOdUTb8WflX/wuFOdq2kazqLX62ajZhnDk9AvSYsAL
JFl75CasAHe1tsQb/phMU/jXDbBA3qcStnBGxEal13+wA80Tj2t0Y0r8EcmCuCgiUsLAX7mACV+y4i9AKosLkIvimfV1uyKZ
uTBdZuVgNPzPUAz4gZ4fBur79linMigvVPX2AuVkAqFLpAS2kCpyz3F97/DcMmZJTcKWVLwOZ8t5aozoTfVwdk7OAwCuhZrG
4ezfKinoSp+RJor3ICmNQ7H8I/0OZMSqZTzUq+Yuk5xli4EoPleRB2kqAZLnJ29dyGb3medNly0M131sk9GRr+KRU4Z0DKrU
twyKdPlOl4GkkR/t2ydgA2/U0irsMogFlH9OxuNO8K1JWVNANKQyPd2T4mIT2jjOzOqm/rjZCO/Nl7R5eV1+mI1xWJmCnJ4q
AZkiUiMrFunVFicefJ0AIOxBbfbZiXhj/AJ4coQnH781+veuuaJkehJgCAHh3nSBQdXUWmBb6cKEuj+0uuvysOFN7QgDZkIQ
9/LY2HvKiJOiW06m9Jvwl+aW2bhL5gHNsulHvrHxRfeSqEUupwGkHoPZWFYYE99d+NzXQaPSLuqBZdu1r8JmH7ZBqvpDyzRi
vwqN5fHrQhdDWqg2U71amFL5aIuDoXm0lmGnGxOTREQP9+w5VIDevtXo4uYYlEu+ORt2nXPunoD0zusj+cmiNoXQUuB6TKci
u7Mv9MD9S2ElciE2SeXPADfvNT4LhBzXFBJKkF4OmgGOhtkW09JDS90eUNAhmyQMU2WrMObvWRMWWbU+5sDuaH5GPY1mndGD
0rXEIs/TjkCtwPpI615pe185axiGDBiM3U+EPk79NuuwgxtZ370ilpoMJFuvPc7Iwld+kNtxpmtvWQPUu3mZnpldJMp6Q6RL
v+p0OzsG3sct4glcP+YJbpT7mSPDputwDFupwN1Re/UF1pUYeYs9Lw/qVwKptI4Bgqg+jZYTMEpKYIP4iNUfxDfiqN0SmXCf
IcNr94XONCQphHQfJTxijoMq7vWrflovIGkogcLMjngQGFIi8l0OoCpWwde1aiOcnq2jujSyH73cVc06E2gfVio3OjlJXLBw
aqdmdLi79lTGrg0PcjVzxt5XxfWmO7kdbcm7SsRkQ3txwk9YtqASnKm9B0KSi7Kz/zkFC0dvDZke2fmMCH8TW+0Y+noaRtsY
vzx4jE0EdjRZUD80wXSQhSXkCzW2t58AXKxAknNaeiTpP5sJrlSmatFuIJTVmLDXi38zhs5R9IGctJOP8mjpLF26TUmIr+GZ
SobKBGdtIC9amopCe6Fd9mZ2sTn6xw3rPimXSJcw4Y8cnq1lgLBQwArjg2ruZdXCgcqk95CDhQhgSwgasSIZSSWk2u2Tkrgg
OwQsRyc0I07ucjQLQnqDFQl8nlW4DmNZ29V1SSQ6PfIRqcM7/05ugVrKydj+HIAGvxlV2ksi9KWGo+vhIumlE8UwkKcvZfYQ
XQ03Nv6UjVqOgu3hT+xg1j4xEQjbKlsAY8nTrqrQLUGlhrVUh3L1reMZKHJxwnmijnRBPVNB7Ixi75XGg6zP29SNmID7Sc53
4LgIcEMpM6OWcu8Szhqmh+d+c3dsUl1D55pFk3oTgcCnBPnMqMKXu9aNsPisp9jswABa19tZYM14C0aNg81++ArZBwQBTjTg
e4RyWhuTHQUa43iIVBs69Q/Kkmn8bDS8XUjEAZy6sKaewZuSkL5I6Noup+nhlNf6lyiiQ94GrH2gE06UdeinX3LS8KEF98uT
/j4gimyExW18v1n/R49Jv+5fvScpVLpvmZMnEbgLVDHf465/EcAkAHzeGmxC/jsVILn/yvsbU5t8+RDtyb6OMwFP7BmwynCM
QM/k0HGuzJdrHCUWVFkUXn9thGAcTg00jV154+mNXp8fm/fnmlQ4gGVElKVObCjwyoHNDy/+E1kvgsgVh4w7A6GYrQIb0MtB
UDcXhung1dy+HuKK+Hz5EJldgRKOjM9HimR+ZODQlXriPcGriVPkBcgRYvT72HWCzQNNF0hfbYN1S/G8QowNCUYS7RP4lUGo
8cTcya1IIyzYvLoXiZVG0xcb750/+iXl/okXmG41XWOiLCQtC0Moc4qicT0+N63Qtc5p3r0h9Yu+Pc65phkNq85pLpCXSiAy
koeQxGrVSThpX2xe2y7UkxrpLjY8pWOkGGPMDNmHh5eAoFy3YK/9SkOspCFn0/5bJKkm4Dd/MfYBD68eMDNTM7j/ocdQnnC/
UPBp3/inXM1ZMPGwMZHf6S6NPeLm3Y8BiHHT078XqsbuwTeBGClOUF7vkZC+ipFZU+JUZ2zdNDhHmOaMs26GaaM+edsNnQKr
ExwmqPnfr0SPDxjK5DEt9n5jDXuwiyRsftjjjMJzBbt8Wf01inYxjla6s1mylMem+eF0kxRmBHfWI0MAR6Ke6smK/JJn8tQT
WKihe7X1BUp6G6ZJgmbT4cCLwo94W6aXzOftGXQbwG0qhTUnqn8Bidu6k8ZGI6B9K5Wk//a8yMyKH/RsuLWOwdWaCquPWDVL
yqCQjr3+ZybcatrRV7O1l1Qek75hyvxAVmhq/4xQjqKxF8CqB5XuW0tKv0dY+rZ9nAb/Iue7USgDAJdaZfyb525A9ogHzkyP
zoLV3Twl773JVNy6hhMnLa5d+6FPARuf+z00fjUKmwuufEz2I1ZK3d4rDQWZbLKlj8SVoBONbIQ3CzWUjsKDCrDaZqNfQjsL
qxxT9W5EGKp2gMEG/cO/yCT22ypAbqoFqwQAvvMYFiVzqFV3yIssZpkWqLgrRLdrnoG9/HiWNLI/QcinIzy/v2ATghQsLgpi
/oKefCcnU6RB6I9J1gDjI2rohU7q8CCkhAdc4N6PS07yFVYl7FvVf/2ktER8vYpcJUo/JVkcVP5pRsyGJggxli3M4fR/9HzB
HL8qAqiLjiIYMEm42+kWLGgs4sxK/Lu20hgn/K9/hK63A65IW5p10l1VpofaBZ8QhLsmvdCGcu+tyeMBR8RR9EANbbmA/DH/
j/z+Cv4bbiJqCzyvMemGaIbpknkw6MYr4f9pp+5Za659xIh9H7HTRynebj9ArGzMxyDNTmogHHLOIDInmsorM9B3jqwzFMs6
DN02OcJB3SiAMlMZzonSFlfkQRsW/7vb5woduOn6RX1YPbjwSeNhq64cSz+/2WpzePKJxlbFtoGZUPn1TXxpksLSopy4Potw
0Uh2FYJ9kE6wm9K2n0I2Eq6wixsRRwUxB/XjzWu+zCaEAyKxAw3brEq009d4KIENw+KJd3DmxtfMOH6r82lbPKJsTzwkUTui
i5JLJDsSIBS/N/02ChibhUFgYfZK81hUt/fum+aqQ9vie41SJKRNcQ/EmvfOOWKsejxyWYV0FL+u9R36ECV8NSHxucxtT7PU
ak7T60TFRCmsYJp3HQ55cDOZW1lcCeXxsDkKt+l9L7USnHxw2pEelWmCsP7TrmrCdAOaihXQb6mdlxjSLuWeR52ToYh0bDlb
R6KAhG9otR+LenKwmH9AWo4/MbIkxnrl5IPZ8Euw4aR4B9ZbvmbToMe3rJCAAsxGZqp4qNRVadIR1YlPKBOvyKTlUQv+zZra
TQdEWUt6gFGspmD/SLD26RL1gv6BVBWqVC6A12PnEsSLShNQka37RTjRkSyaKwuKkJfZ20Xg4NU04mwwXjX7Y/H5bzlZJAq3
TpghrAe+nWO5/v2zdbhLoDhjmY0RET+/gmasGj1AsBHwQpUi28/a4AtrRCdj16iXlFo+Q0NuFMeP+yOyoNio+FU1kqpKYQTj
LMlrCfuZtBLlr3dYRqq1MCZBK7b1Yo2eJjLYZfdl2h4E+LTWSlKsTi7p9s24UgX31/FgsPWaS4XIjlZ7uQVlEB9bzT+chzAQ
uiQl2IGXRvjO79faxBMGv9V/fqY2z+T71bapR8vzgblQK4TK6C2BM7beHm8n0f0P8PYoqDw3FAAO9BF8PNopnaBHta8Eq3Nx
AvfRNU6c5NlvOpep6S9yGx6q8hG8cFOCLlsEPg+jwiUQj+HjJHL26XM0/cVtlMNWlWzUhj/Dutw56TE+MJEa3lot1ZcEfdmm
SpbWzTdTb8PoVcu7KPh21w0L7/mN8gWKwHEDeseaUd5EK8QgOe4gQXIO83wxluK6EiUP/LmlWgJiL4jRbfPGHicUUD1vX3dF
i2ylaWK1duGGjWLOQbkFcJ4/4KoxkpOuWqFjsEi2UJ+GbwiOS2KlJhcmLbiKQv57PT009gVm24x96shKoQMOknmL4c8UJRa/
hXnhVtZdoBxTjIYQSTmAqEF/h9l7tjFfunLzVbfqm2HoVk0GOzFNcCO8wbh3heH2ElLwApGSo0TYXizNAhKUJU1Wbn3fiITV
QdHfssb9mkiEUFY8iwNKBJ9Bnvpfr+optx34tbvVXJzWMQEwOwUBstRDKaS3SiN1UmlLb3BqAQkiIEYKveP07uPJMX+inN0G
8psGW64VYCAkdCAIyZrOOh3Ly3KGJqc9CtcgQpF+wBEzt/AeBG1qtt+gI+g5MFrPPcYZqYh7m2SEQk/sL/zWsKx3lbN5qt10
Q9zlIdt2HtVDuslUbp9jrRTHSHjyqubIUKI/wP2DpyIC1DgonkRatzAPdLhyS1msfcbFuA4P28a2o0gvKTTFgeS/0nNXt1n4
LoQk5HrjyIbG2CiZd/6Lkj9C/3ubfgyWsmWK2p2Q2lQWBEx1TCox6QfU5ccpp+qORibdqY+dtjPKTh76xE0GgT07ZQ6iMveQ
rb7c6E4bh9ESYsIDDDninsfXppT3LhaWA6C5NyYrGbrgb1hQJodrfL/118gghgjFBnr6DrfFUl6+Z7iL+QjBCSW8B9DjEWOw
oR/dLrdJAvercyHCWFgCgoa54EYZCZrMgntU2nSvH4BGnZsdSiCspOPj9D3GvFy4/JHDnVcKoFqnQvlbkaYiJ072Xo4T871I
OApGQ7IUp15Owr3STdyG58BMNeTntc+wpYgVTCSQIfbqO9ktcn8N04bDrRpyfDvIa9BHQiyiY10zzCosXXTe40yN5cMXF5n3
qLfIEOD2qYdNpb+MiCTP7D8CwAVRNyHaCt247rEjzBUVjmpfGOdbdGLkoaicqAlhHYrQE4WWDMQ3wWkvk72uRoh/9qVDhQ9+
GZoMmFLyWN2yS661+fAphZTBrAfOLKccTt/AACpWFBz+ntIJNpR4u6+x9VwOa0HudfvhDxsveTxjOf0eKjNt4PW+//0FSUdF
hfSvEla3wQ1qzQznLgSdzdKCMXp32/ZJkZNzv4arQnhlvyqWPCjnEwSz08S+XhdHGpg5V/ZsmddUrstmui0CR9tCyrhSvblK
e3sakpJQHhNnYi1dhIwnLnXLNg5oL0i1JQUs0SSNKoHGZrp0CPlsZ0s9uDFVgBo5EfPDzIlIkbbn7+9qzbo8OtiOAV4ElP4Y
knr53tVXgkraBs2/BKlMB9+2ejKdc9UhKXppx7YElpPbfaBBt10joXNBRF8FlIyeLZAFR63ob7M89Dbe3jz2+TiRcWwQpTFO
kafZNEPIIIGotThvXqEERNzfMfqkgX/ha5eGwynjqrwfzYBuR3xoW/1LTUMCKmXshSclxU/gTh9nwsBe/J/14a2RrfFLcps0
gVcVWMeJzbCbUeIltf3J7GCez6QggroDscuLQt86BKS6kg/O4slp6HOR1mBUKcYnpa/nplWOqeyuDi35g4BS5Q4YmCS7ZoRf
yfnKSZtcVIrxhjGZEdnVQoeJP2EuEUh7+UVRQJbAqNAiTV5vVySlxyAuj951NTu/Y5FBlSghnC13NR31os/u+GsEnGDT33d8
LK1ygPA46jVvCLjViQB5BignGm52vhdNT6fOMjko7kMkZWZsju0cpbwEpgTnuApqKcWX3ywY0As8foHEVXaJANSi481sihld
QqZ5mtKbO1dUlIeJ2VO5u3IsiLNAg+h7mRbxx74Bk70zCJzYq+rUjPIb21a8IV+UIVv/Mx90bCzvV0Zi/xN62GiQxQdm43Ua
lwRt9faDfQKiOnoTYSMSF7R3vCak3eEiA1YHfFDvdQbDY083Ng9HMgWgAMUHA7quqzxBTtcWMNZy0JqmQw9NlNwuKJxmU1hV
bTamJf6yOiZHXsVpOVJMji5HBp3mY7mULa//6OHHVd8TNU5XcbL4wAAAAABIU7PxkmZDDwAB9TKA4AMAyYJ9MrHEZ/sCAAAA
AARZWg==
"""
_DIGEST = "e6cf1e5e4ec89ebb736976dfeab5baa4bcad5116d1492d810d53106fc6fc964e"


def _unpack() -> dict[str, bytes]:
    messages = {}
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(_ARCHIVE)), mode="r:xz") as archive:
        for member in archive.getmembers():
            file = archive.extractfile(member)
            assert file is not None
            messages[member.name.removesuffix(".dat")] = file.read()
    return messages


TORTURE = _unpack()

# name -> (RFC 4475 section, what our parser does, why). "parses": a message comes out;
# "400"/"505": SipParseError and that reply from bad_request_response; "drop": a
# SipParseError with no reply possible (a response is never answered).
OUTCOMES: dict[str, tuple[str, str, str]] = {
    "wsinv": ("3.1.1.1", "parses", "folding, LWS, compact and unknown headers"),
    "intmeth": ("3.1.1.2", "parses", "odd but legal token and URI characters"),
    "esc01": ("3.1.1.3", "parses", "escapes kept as received"),
    "escnull": ("3.1.1.4", "parses", "%00 stays an escape, never a NUL"),
    "esc02": ("3.1.1.5", "parses", "RE%47IST%45R is a method of its own, C%6Fntact a header"),
    "lwsdisp": ("3.1.1.6", "parses", "no space needed between display name and <"),
    "longreq": ("3.1.1.7", "parses", "3.5 KB is within the 16 KiB header limit"),
    "dblreq": ("3.1.1.8", "parses", "UDP: bytes past Content-Length dropped; stream: two"),
    "semiuri": ("3.1.1.9", "parses", "';' in the user part"),
    "transports": ("3.1.1.10", "parses", "unknown transports are tokens"),
    "mpart01": ("3.1.1.11", "parses", "the body is opaque bytes, bare LFs and all"),
    "unreason": ("3.1.1.12", "parses", "UTF-8 reason phrase"),
    "noreason": ("3.1.1.13", "parses", "empty reason phrase"),
    "badinv01": ("3.1.2.1", "400", "';;' in Via: an empty parameter"),
    "clerr": ("3.1.2.2", "400", "UDP: Content-Length past the datagram; a stream waits"),
    "ncl": ("3.1.2.3", "400", "negative Content-Length (fatal on a stream)"),
    "scalar02": ("3.1.2.4", "400", "CSeq number 2**31 or more"),
    "scalarlg": ("3.1.2.5", "drop", "a response with a CSeq over 2**31"),
    "quotbal": ("3.1.2.6", "400", "unterminated quoted string in To"),
    "ltgtruri": ("3.1.2.7", "400", "<> around the Request-URI"),
    "lwsruri": ("3.1.2.8", "400", "a space inside the Request-URI"),
    "lwsstart": ("3.1.2.9", "400", "double spaces in the Request-Line"),
    "trws": ("3.1.2.10", "400", "trailing spaces after SIP/2.0 (strict; RFC allows either)"),
    "escruri": ("3.1.2.11", "400", "a Request-URI with headers"),
    "baddate": ("3.1.2.12", "parses", "Date is not interpreted: RFC lets an element accept"),
    "regbadct": ("3.1.2.13", "400", "a Contact URI with '?' outside <>"),
    "badaspec": ("3.1.2.14", "400", "spaces inside <> in To"),
    "baddn": ("3.1.2.15", "400", "unquoted display name with a comma"),
    "badvers": ("3.1.2.16", "505", "SIP/7.0"),
    "mismatch01": ("3.1.2.17", "400", "CSeq method differs from the request's"),
    "mismatch02": ("3.1.2.18", "400", "CSeq method differs (RFC: 400 or 501)"),
    "bigcode": ("3.1.2.19", "drop", "status code of ten digits, in a response"),
    "badbranch": ("3.2.1", "parses", "branch is the bare cookie: for the transaction layer"),
    "insuf": ("3.3.1", "400", "no From, To, Call-ID: Via and CSeq still route a 400"),
    "unkscm": ("3.3.2", "parses", "unknown Request-URI scheme: an OtherUri, the UA's 416"),
    "novelsc": ("3.3.3", "parses", "likewise, a scheme with a dot"),
    "unksm2": ("3.3.4", "parses", "non-SIP To/From/Contact URIs: OtherUri, registrar's call"),
    "bext01": ("3.3.5", "parses", "unknown Require: the UA's 420"),
    "invut": ("3.3.6", "parses", "unknown body type: the UA's 415"),
    "regaut01": ("3.3.7", "parses", "unknown auth scheme: auth.py raises AuthError -> 401"),
    "multi01": ("3.3.8", "400", "two From, To, Call-ID and CSeq headers"),
    "mcl01": ("3.3.9", "400", "two different Content-Length values"),
    "bcast": ("3.3.10", "parses", "two Vias in a response: the UAC discards it"),
    "zeromf": ("3.3.11", "parses", "Max-Forwards 0 is legal at a UAS"),
    "cparam01": ("3.3.12", "parses", "an unknown Contact parameter (outside <>)"),
    "cparam02": ("3.3.13", "parses", "an unknown URI parameter (inside <>)"),
    "regescrt": ("3.3.14", "parses", "escaped headers in a Contact URI: visible to a registrar"),
    "sdp01": ("3.3.15", "parses", "Accept without SDP: the UA's 415"),
    "inv2543": ("3.4.1", "parses", "RFC 2543 style: no branch, no tag, no Max-Forwards"),
}


def test_the_archive_is_rfc_4475() -> None:
    assert sorted(TORTURE) == sorted(OUTCOMES)
    digest = hashlib.sha256(b"".join(TORTURE[name] for name in sorted(TORTURE))).hexdigest()
    assert digest == _DIGEST


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_outcome_as_a_datagram(name: str) -> None:
    outcome = OUTCOMES[name][1]
    if outcome == "parses":
        assert parse_datagram(TORTURE[name]) is not None
        return
    with pytest.raises(SipParseError) as caught:
        parse_datagram(TORTURE[name])
    reply = bad_request_response(caught.value, to_tag="t1")
    if outcome == "drop":
        assert reply is None
        return
    assert reply is not None and reply.status == int(outcome)
    assert reply.reason == caught.value.reason[:120]
    request = caught.value.partial
    assert isinstance(request, SipRequest)
    # The reply copies what lets the client match it: every Via and the CSeq.
    assert reply.headers.get_all("Via") == request.headers.get_all("Via")
    assert reply.headers.get("CSeq") == request.headers.get("CSeq")


@pytest.mark.parametrize("name", sorted(OUTCOMES))
def test_a_stream_agrees_with_the_datagram(name: str) -> None:
    data = TORTURE[name]
    events = SipStreamParser().feed(data)
    try:
        expected = parse_datagram(data)
    except SipParseError:
        expected = None
    if name == "clerr":
        assert events == []  # Content-Length 9999: the rest may still come
    elif name == "inv2543":  # no Content-Length: a stream cannot frame it
        assert len(events) == 1 and isinstance(events[0], InvalidMessage)
        assert events[0].fatal and "Content-Length" in events[0].error.reason
    elif expected is None:
        assert len(events) == 1 and isinstance(events[0], InvalidMessage)
        # Only a broken Content-Length loses the framing; otherwise the stream goes on.
        assert events[0].fatal == (name in ("ncl", "mcl01"))
    else:
        assert events[0] == expected


def _request(name: str) -> SipRequest:
    message = parse_datagram(TORTURE[name])
    assert isinstance(message, SipRequest)
    return message


def _sip(uri: object) -> SipUri:
    assert isinstance(uri, SipUri)
    return uri


def test_wsinv() -> None:
    request = _request("wsinv")
    assert request.method == "INVITE"
    assert _sip(request.uri).params == {"unknownparam": None}
    assert request.to.tag == "1918181833n"
    assert request.from_.display_name == 'J Rosenberg \\"'
    assert request.from_.tag == "98asjd8"
    assert request.max_forwards == 68
    assert request.cseq.number == 9 and request.cseq.method == "INVITE"
    vias = request.via
    assert [(v.transport, v.host, v.branch) for v in vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert request.headers.get("Subject") == ""
    assert request.headers.get("newfangledheader") == "newfangled value continued newfangled value"
    assert request.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    route = request.headers.values("Route")
    assert route == ["<sip:services.example.com;lr;unknownwith=value;unknown-no-value>"]
    [contact] = request.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert len(request.body) == 150 and request.body.startswith(b"v=0\r\n")


def test_intmeth() -> None:
    request = _request("intmeth")
    assert request.method == "!interesting-Method0123456789_*+`.%indeed'~"
    uri = _sip(request.uri)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert request.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert request.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert request.from_.tag == "_token~1'+`*%!-."
    assert request.via[0].branch == "z9hG4bK-.!%66*_+`'~"
    assert request.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert request.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"


def test_escapes_are_kept_as_received() -> None:
    esc01 = _request("esc01")
    assert _sip(esc01.uri).user == "sips%3Auser%40example.com"
    assert _sip(esc01.to.uri).user == "%75se%72"
    assert esc01.call_id.startswith("esc01.")  # the compact form "i"
    assert esc01.headers.get("Content-Type") == "application/sdp"  # "C"
    assert _sip(esc01.contacts[0].uri).params == {"%6c%72": None, "n%61me": "v%61lue%25%34%31"}
    escnull = _request("escnull")
    assert _sip(escnull.to.uri).user == "null-%00-null"
    assert [_sip(c.uri).user for c in escnull.contacts] == ["%00", "%00%00"]
    esc02 = _request("esc02")
    assert esc02.method == "RE%47IST%45R" and esc02.cseq.method == "RE%47IST%45R"
    assert len(esc02.contacts) == 2 and esc02.headers.get("C%6Fntact") is not None
    assert esc02.to.display_name == "%Z%45"


def test_lwsdisp_semiuri_transports_longreq() -> None:
    assert _request("lwsdisp").from_.display_name == "caller"
    semiuri = _sip(_request("semiuri").uri)
    assert (semiuri.user, semiuri.host) == ("user;par=u%40example.net", "example.com")
    accept = _request("semiuri").headers.values("Accept")
    assert accept[0] == "application/sdp" and accept[-1] == "message/sipfrag" and len(accept) == 6
    transports = [via.transport for via in _request("transports").via]
    assert transports == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    longreq = _request("longreq")
    assert longreq.to.display_name is not None and "extremeextreme" in longreq.to.display_name
    assert _sip(longreq.to.uri).port == 6000
    assert len(longreq.via) == 34 and len(longreq.body) == 150


def test_dblreq_is_one_request_by_udp_and_two_by_stream() -> None:
    register = _request("dblreq")
    assert register.method == "REGISTER" and register.body == b""
    events = SipStreamParser().feed(TORTURE["dblreq"])
    assert [type(event) for event in events[:3]] == [SipRequest, KeepAlivePong, SipRequest]
    assert isinstance(events[2], SipRequest) and events[2].method == "INVITE"
    # The INVITE's SDP runs past its Content-Length; on a stream that tail is the start
    # of a next "message" that has no Content-Length: the framing is lost.
    assert isinstance(events[3], InvalidMessage) and events[3].fatal


def test_mpart01_body_is_opaque() -> None:
    request = _request("mpart01")
    assert request.headers.get("Content-Type") == "multipart/mixed;boundary=7a9cbec02ceef655"
    assert len(request.body) == 553 and request.body.endswith(b"--7a9cbec02ceef655--\r\n")
    assert b"\xff" in request.body  # the binary part, untouched


def test_reason_phrases() -> None:
    unreason = parse_datagram(TORTURE["unreason"])
    assert isinstance(unreason, SipResponse) and unreason.status == 200
    assert unreason.reason.startswith("= 2**3 * 5**2 но сто")
    noreason = parse_datagram(TORTURE["noreason"])
    assert isinstance(noreason, SipResponse)
    assert (noreason.status, noreason.reason) == (100, "")


def test_anomalies_left_to_the_layers_above_are_visible() -> None:
    assert _request("baddate").headers.get("Date") == "Fri, 01 Jan 2010 16:00:00 EST"
    assert _request("badbranch").via[0].branch == "z9hG4bK"
    assert isinstance(_request("unkscm").uri, OtherUri)
    assert str(_request("novelsc").uri) == "soap.beep://192.0.2.103:3002"
    unksm2 = _request("unksm2")
    assert isinstance(unksm2.to.uri, OtherUri) and isinstance(unksm2.contacts[0].uri, OtherUri)
    assert _request("bext01").headers.values("Require") == [
        "nothingSupportsThis", "nothingSupportsThisEither"]
    assert _request("invut").headers.get("Content-Type") == "application/unknownformat"
    assert _request("regaut01").headers.get("Authorization") == (
        "NoOneKnowsThisScheme opaque-data=here")
    bcast = parse_datagram(TORTURE["bcast"])
    assert bcast is not None and len(bcast.via) == 2 and bcast.via[1].host == "255.255.255.255"
    assert _request("zeromf").max_forwards == 0
    assert _request("cparam01").contacts[0].params == {"unknownparam": None}
    assert _sip(_request("cparam02").contacts[0].uri).params == {"unknownparam": None}
    assert _sip(_request("regescrt").contacts[0].uri).headers == {
        "Route": "%3Csip:sip.example.com%3E"}
    assert _request("sdp01").headers.get("Accept") == "text/nobodyKnowsThis"
    inv2543 = _request("inv2543")
    assert inv2543.via[0].branch is None and inv2543.from_.tag is None
    assert inv2543.max_forwards is None
