"""Carriers' REST call control: transfer and hang-up where a media stream cannot.

One module per carrier, each a `realtime_voice.legs.base.PlatformCallControl` over the
carrier's REST API (Telnyx Call Control, Plivo's Call API, Vonage's Voice API), with an
injectable base URL and explicit timeouts so tests point it at the simulators in
`realtime_voice.testing`. Nothing here knows the webhooks, the session or the server.
"""
