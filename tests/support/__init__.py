"""What several test folders share: networks of real daemons (``nodes``) and audited node homes (``audit``)."""
