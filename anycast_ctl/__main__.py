from anycast_ctl.cli import main

main()
